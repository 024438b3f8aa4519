//! hypha-server: the HTTP/1.1 edge, the master and worker roles, and the
//! pieces the single `hypha` binary is made of.

pub mod backup;
pub mod backup_file;
pub mod cli;
pub mod commands;
pub mod edge;
pub mod gate;
pub mod group;
pub mod help;
pub mod http;
pub mod keys;
pub mod limits;
pub mod master;
pub mod member;
pub mod mux;
pub mod peer;
pub mod progress;
pub mod requests;
pub mod rt;
pub mod watch;
pub mod wire;
pub mod worker;
