//! Dropping root privileges to a configured user and group after binding.

use nix::unistd::{getuid, initgroups, setgid, setgroups, setuid, Gid, Group, Uid, User};

use crate::error::{Error, ErrorKind, Result, Side};

/// The user and group to run as, resolved from their names.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The user name (for supplementary groups).
    pub user_name: Option<String>,
    /// The uid to switch to.
    pub uid: Option<Uid>,
    /// The gid to switch to.
    pub gid: Option<Gid>,
}

impl Identity {
    /// Resolves `user` and `group` names. Without `group`, the user's primary group is used.
    pub fn resolve(user: Option<&str>, group: Option<&str>) -> Result<Self> {
        let user_entry = match user {
            Some(name) => Some(
                User::from_name(name)
                    .map_err(|e| priv_error(format!("cannot look up user {name}"), e))?
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::Internal,
                            Side::Internal,
                            format!("no such user: {name}"),
                        )
                    })?,
            ),
            None => None,
        };
        let gid = match group {
            Some(name) => Some(
                Group::from_name(name)
                    .map_err(|e| priv_error(format!("cannot look up group {name}"), e))?
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::Internal,
                            Side::Internal,
                            format!("no such group: {name}"),
                        )
                    })?
                    .gid,
            ),
            None => user_entry.as_ref().map(|u| u.gid),
        };
        Ok(Identity {
            user_name: user.map(str::to_string),
            uid: user_entry.map(|u| u.uid),
            gid,
        })
    }

    /// Whether there is anything to switch to.
    pub fn is_empty(&self) -> bool {
        self.uid.is_none() && self.gid.is_none()
    }
}

/// Switches to `identity` (supplementary groups, then gid, then uid) when running as
/// root; does nothing otherwise. Fails if any step fails or does not stick, so the
/// server never runs with more privileges than configured.
pub fn drop_privileges(identity: &Identity) -> Result<()> {
    if identity.is_empty() || !getuid().is_root() {
        return Ok(());
    }
    if let Some(gid) = identity.gid {
        match (&identity.user_name, identity.uid) {
            (Some(name), Some(_)) => {
                let cname = std::ffi::CString::new(name.as_str()).map_err(|e| {
                    Error::because(ErrorKind::Internal, Side::Internal, "bad user name", e)
                })?;
                initgroups(&cname, gid)
                    .map_err(|e| priv_error(format!("cannot set the groups of {name}"), e))?;
            }
            _ => setgroups(&[gid]).map_err(|e| priv_error("cannot set groups".into(), e))?,
        }
        setgid(gid).map_err(|e| priv_error(format!("cannot switch to gid {gid}"), e))?;
    }
    if let Some(uid) = identity.uid {
        setuid(uid).map_err(|e| priv_error(format!("cannot switch to uid {uid}"), e))?;
        // Getting root back must be impossible now.
        if setuid(Uid::from_raw(0)).is_ok() {
            return Err(Error::new(
                ErrorKind::Internal,
                Side::Internal,
                "privilege drop did not stick: could switch back to root",
            ));
        }
    }
    Ok(())
}

fn priv_error(context: String, e: nix::Error) -> Error {
    Error::because(ErrorKind::Internal, Side::Internal, context, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_root_and_rejects_unknown() {
        let id = Identity::resolve(Some("root"), None).unwrap();
        assert_eq!(id.uid, Some(Uid::from_raw(0)));
        assert_eq!(id.gid, Some(Gid::from_raw(0)));
        let err = Identity::resolve(Some("no-such-user-here"), None).unwrap_err();
        assert!(err.to_string().contains("no such user"), "{err}");
        let err = Identity::resolve(None, Some("no-such-group-here")).unwrap_err();
        assert!(err.to_string().contains("no such group"), "{err}");
    }

    #[test]
    fn nothing_to_drop_is_a_no_op() {
        drop_privileges(&Identity::resolve(None, None).unwrap()).unwrap();
    }
}
