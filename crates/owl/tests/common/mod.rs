//! Helpers for tests that run the `owl` binary.

#![allow(dead_code)]

use std::process::Command;
use std::time::Duration;

/// Every wait is bounded by this; reaching it is a failure.
pub const LIMIT: Duration = Duration::from_secs(20);

/// The `owl` binary under test.
pub fn owl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_owl"))
}

/// One HTTP/1.0 exchange over a plain socket: the whole answer as text.
pub fn http(addr: &str, request: &str) -> String {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    socket.set_read_timeout(Some(LIMIT)).unwrap();
    socket.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).unwrap();
    answer
}
