//! Free loopback ports for stacks that must not collide (tests, benchmarks).

use std::net::TcpListener;

/// A port nothing listens on right now (the OS picks it).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A broker port `p` with `p-2` (the broker's "fast" channel) and `p+1` (HA) free too.
pub fn free_broker_port() -> anyhow::Result<u16> {
    for _ in 0..200 {
        let p = free_port()?;
        if !(1100..=65000).contains(&p) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", p - 2)).is_ok() && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return Ok(p);
        }
    }
    anyhow::bail!("no free broker port triple on 127.0.0.1")
}
