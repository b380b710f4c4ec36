//! The process around the server: daemon mode, pid file, privilege drop and readiness
//! notification (to a waiting parent and to systemd).

pub mod daemon;
pub mod notify;
pub mod pid_file;
pub mod privileges;
