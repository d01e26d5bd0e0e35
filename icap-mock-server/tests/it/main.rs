//! Integration tests of icap-mock-server: raw ICAP bytes over TCP for every behaviour,
//! dialect and fault; the admin API; the config file; TLS; the binary.

mod admin;
mod basics;
mod binary;
mod config;
mod dialects;
mod errors;
mod faults;
mod journal;
mod precedence;
mod proxy;
mod proxy_tls;
mod rules;
mod server_rules;
mod support;
mod tls;
