//! End-to-end tests of the client against icap-mock-server (one test binary, as rustls does).
//! Every test asserts the verdict and what happened to the file.

mod bench;
mod cli;
mod common;
mod failover;
mod faults;
mod integrity;
mod layers;
mod memory;
mod policy;
mod pool;
mod raw;
mod settings;
mod tls;
mod verdicts;
