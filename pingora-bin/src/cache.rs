//! The caches of the YAML services: built from a service's `cache:` section (memory,
//! or memory in front of a disk tier), opened once the process is set up, flushed when
//! it stops.
//!
//! A cache with a disk tier has an I/O thread and files, so it is opened after the
//! process daemonized (threads do not survive the fork) and switched to `user`/`group`
//! (the files belong to the user that serves): [`ServiceCache::open`] from the
//! binary's `after_daemonize` hook. Until then a service has no cache; no request
//! arrives before.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pingora_cache::{
    CacheOptions, DiskStorage, HttpCache, MemoryStorage, Storage, StoreRules, TieredStorage,
};
use pingora_config::CacheConf;

use crate::error::BinError;

/// The cache of one service: its settings, and the cache once opened. Cheap to clone;
/// clones share the cache.
#[derive(Clone)]
pub struct ServiceCache {
    inner: Arc<Inner>,
}

struct Inner {
    service: String,
    conf: CacheConf,
    cache: OnceLock<Arc<HttpCache>>,
}

impl ServiceCache {
    /// The cache of `service` as `conf` describes it, not opened yet.
    pub fn new(service: &str, conf: &CacheConf) -> ServiceCache {
        ServiceCache {
            inner: Arc::new(Inner {
                service: service.to_string(),
                conf: conf.clone(),
                cache: OnceLock::new(),
            }),
        }
    }

    /// The cache, once opened.
    pub fn get(&self) -> Option<&Arc<HttpCache>> {
        self.inner.cache.get()
    }

    /// The service's name.
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// Whether it has a disk tier.
    pub fn has_disk(&self) -> bool {
        self.inner.conf.disk.is_some()
    }

    /// Opens the cache: memory of `max_bytes`, in front of the files of `disk.path`
    /// when there is a disk tier (its index rebuilt from the files found; blocks on the
    /// directory scan). Storing follows `max_object_bytes` and `store_set_cookie`.
    pub fn open(&self) -> Result<(), BinError> {
        let conf = &self.inner.conf;
        let storage: Arc<dyn Storage> = match &conf.disk {
            None => Arc::new(MemoryStorage::new(conf.max_bytes)),
            Some(disk) => {
                let files = DiskStorage::open(&disk.path, disk.max_bytes).map_err(|source| {
                    BinError::CacheDisk {
                        service: self.inner.service.clone(),
                        path: disk.path.clone(),
                        source,
                    }
                })?;
                Arc::new(TieredStorage::new(conf.max_bytes, files))
            }
        };
        let opts = CacheOptions {
            lock_timeout: Duration::from_millis(conf.lock_timeout_ms),
            max_entry_bytes: conf.max_object_bytes,
            rules: StoreRules {
                store_set_cookie: conf.store_set_cookie,
            },
        };
        let cache = Arc::new(HttpCache::new(storage, opts));
        if self.inner.cache.set(cache).is_err() {
            ::log::warn!("cache of service {} opened twice", self.inner.service);
        }
        Ok(())
    }

    /// Waits until every write queued for the disk tier is on disk (at exit).
    pub fn flush(&self) {
        if let Some(cache) = self.get() {
            cache.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_reach_the_cache() {
        let conf = CacheConf {
            max_bytes: 4 << 20,
            max_object_bytes: 1 << 20,
            store_set_cookie: true,
            ..CacheConf::default()
        };
        let cache = ServiceCache::new("web", &conf);
        assert!(cache.get().is_none(), "opened only when asked");
        cache.open().unwrap();
        let opened = cache.get().unwrap();
        assert_eq!(opened.max_entry_bytes(), 1 << 20);
        assert!(opened.rules().store_set_cookie);
        assert!(!cache.has_disk());
    }

    #[test]
    fn a_disk_that_cannot_be_opened_names_its_path_and_cause() {
        let file =
            std::env::temp_dir().join(format!("pingora-bin-not-a-dir-{}", std::process::id()));
        std::fs::write(&file, b"x").unwrap();
        let conf = CacheConf {
            disk: Some(pingora_config::CacheDiskConf {
                path: file.join("cache"),
                max_bytes: 1 << 20,
            }),
            ..CacheConf::default()
        };
        let err = ServiceCache::new("web", &conf).open().unwrap_err();
        let text = err.to_string();
        std::fs::remove_file(&file).unwrap();
        assert!(
            text.contains(&file.join("cache").display().to_string()),
            "{text}"
        );
        assert!(text.contains("service web"), "{text}");
    }
}
