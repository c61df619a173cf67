//! Free loopback ports for stacks that must not collide (tests, benchmarks, chaos runs).
//!
//! Ports are drawn at random from *below* the kernel's ephemeral range
//! (`net.ipv4.ip_local_port_range`): a port the OS hands out for `bind(:0)` is also one it
//! may hand to any outgoing connection a moment later, which is how a broker in a parallel
//! test lost its HA port once. A pick can still race another process, so the stack retries a
//! start with fresh ports when a server dies before it is ready (see
//! [`StackBuilder`](crate::builder::StackBuilder)).

use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;

/// Where random picks start; below it live well-known and registered services.
const LOWEST: u16 = 20_000;

/// A port nothing listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    pick(bindable)
}

/// A broker port `p` with `p-2` (the broker's "fast" channel) and `p+1` (HA) free too.
pub fn free_broker_port() -> anyhow::Result<u16> {
    pick(|p| bindable(p) && bindable(p - 2) && bindable(p + 1))
}

fn pick(ok: impl Fn(u16) -> bool) -> anyhow::Result<u16> {
    let (low, high) = candidate_range();
    if high > low + 16 {
        for _ in 0..500 {
            let p = low + u16::try_from(random() % u64::from(high - low)).unwrap_or(0);
            if ok(p) {
                return Ok(p);
            }
        }
    }
    // Fallback: whatever the OS gives, checked the same way.
    for _ in 0..200 {
        let p = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if (1100..=65000).contains(&p) && ok(p) {
            return Ok(p);
        }
    }
    anyhow::bail!("no free port on 127.0.0.1")
}

/// `[LOWEST+2, ephemeral_low-2)`, or an empty range when the ephemeral range starts too low.
fn candidate_range() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<u16>().ok()))
        .unwrap_or(32_768);
    (LOWEST + 2, ephemeral_low.saturating_sub(2))
}

fn bindable(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A fresh random number per call (std's per-instance random hasher keys).
fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.write_u32(std::process::id());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_port_has_its_neighbours_free() {
        let p = free_broker_port().unwrap();
        assert!(bindable(p) && bindable(p - 2) && bindable(p + 1));
    }
}
