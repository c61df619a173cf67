//! A private network for a process stack, so that two running parts can be cut off from each
//! other (a partition: both alive, neither reaching the other), which kill -9 and SIGSTOP do not
//! cover.
//!
//! Each part runs in a Linux network namespace of its own with one address on a private /24;
//! a hub namespace joins them with a bridge, and a veth from this (the root) namespace gives the
//! launcher — its HTTP clients, its own MariaDB server — the `.1` address on the same wire:
//!
//! ```text
//!   root 10.77.Y.1 ─┐
//!   namesrv    .3 ──┤
//!   broker     .2 ──┼── br0 in the hub, with an nft set `cut` of (from . to) pairs it drops
//!   bank1     .11 ──┤
//!   bank2     .12 ──┘
//! ```
//!
//! A cut adds both directions of a pair to the set: packets are dropped silently, as on a real
//! partition, so TCP connections stall instead of failing fast; a heal removes them and the
//! stalled connections carry on. Needs root and the `ip` (iproute2) and `nft` (nftables)
//! commands; [`Network::check`] says what is missing. See docs/RELIABILITY.md, "Partitions".

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command as StdCommand, Stdio};

use anyhow::Context;

use crate::Part;

/// Where a part runs: the address it binds and others reach it on, and the network namespace
/// its process enters (none: the launcher's own).
#[derive(Debug, Clone)]
pub struct Placement {
    pub ip: IpAddr,
    pub netns: Option<String>,
}

impl Placement {
    /// Where `part` runs: in its namespace on `network`, or on loopback in the launcher's
    /// namespace when the stack has no network.
    pub fn of(network: Option<&Network>, part: Part) -> Self {
        network.map_or(Self { ip: IpAddr::V4(Ipv4Addr::LOCALHOST), netns: None }, |n| Self {
            ip: n.ip(part),
            netns: Some(n.netns(part)),
        })
    }

    /// A command that runs `exe` here (`ip netns exec NS exe …`; ip execs the program, so the
    /// child's pid is the program's own, for signals and kill -9).
    pub fn command(&self, exe: &Path) -> tokio::process::Command {
        match &self.netns {
            None => tokio::process::Command::new(exe),
            Some(ns) => {
                let mut c = tokio::process::Command::new("ip");
                c.args(["netns", "exec", ns]).arg(exe);
                c
            }
        }
    }
}

/// The namespaces, bridge and veths of one stack; removed on [`destroy`](Self::destroy) or drop.
#[derive(Debug)]
pub struct Network {
    tag: String,
    subnet: [u8; 3],
    up: bool,
}

/// Every part, in the order their namespaces are made.
const PARTS: [Part; 4] = [Part::Namesrv, Part::Broker, Part::Bank1, Part::Bank2];

impl Network {
    /// Whether this process can build one: root, with `ip` and `nft` on PATH.
    pub fn check() -> anyhow::Result<()> {
        anyhow::ensure!(crate::processes::running_as_root(), "network namespaces need root");
        for (tool, package) in [("ip", "iproute2"), ("nft", "nftables")] {
            let found = StdCommand::new(tool)
                .arg("-V")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            anyhow::ensure!(found, "`{tool}` not found (Debian: apt-get install {package})");
        }
        Ok(())
    }

    /// Builds the hub, one namespace per part and the root's veth, on a free 10.77.Y.0/24.
    pub fn create() -> anyhow::Result<Self> {
        Self::check()?;
        let tag = format!("bt{:04x}", std::process::id() & 0xffff);
        let mut me = Self { tag, subnet: [10, 77, free_subnet()?], up: true };
        if let Err(e) = me.build() {
            me.destroy();
            return Err(e.context("building the chaos network"));
        }
        Ok(me)
    }

    fn build(&self) -> anyhow::Result<()> {
        let hub = self.hub();
        let root_if = format!("{}-r", self.tag);
        ip(&["netns", "add", &hub])?;
        ip(&["-n", &hub, "link", "set", "lo", "up"])?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        nft(&hub, CUT_TABLE)?;
        self.wire(&root_if, None, &format!("{}-rh", self.tag))?;
        ip(&["addr", "add", &format!("{}/24", self.host_ip()), "dev", &root_if])?;
        ip(&["link", "set", &root_if, "up"])?;
        for (i, part) in PARTS.into_iter().enumerate() {
            let ns = self.netns(part);
            ip(&["netns", "add", &ns])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            self.wire("eth0", Some(&ns), &format!("{}-{i}h", self.tag))?;
            ip(&["-n", &ns, "addr", "add", &format!("{}/24", self.ip(part)), "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        }
        Ok(())
    }

    /// A veth from `end` (in namespace `ns`, or the root) to `port` on the hub's bridge.
    fn wire(&self, end: &str, ns: Option<&str>, port: &str) -> anyhow::Result<()> {
        let hub = self.hub();
        let mut args = vec!["link", "add", "name", end];
        if let Some(ns) = ns {
            args.extend(["netns", ns]);
        }
        args.extend(["type", "veth", "peer", "name", port, "netns", &hub]);
        ip(&args)?;
        ip(&["-n", &hub, "link", "set", port, "master", "br0"])?;
        ip(&["-n", &hub, "link", "set", port, "up"])
    }

    fn hub(&self) -> String {
        format!("{}-hub", self.tag)
    }

    /// The namespace `part` runs in.
    pub fn netns(&self, part: Part) -> String {
        format!("{}-{}", self.tag, part.name())
    }

    /// The address of `part`.
    pub fn ip(&self, part: Part) -> IpAddr {
        let host = match part {
            Part::Broker => 2,
            Part::Namesrv => 3,
            Part::Bank1 => 11,
            Part::Bank2 => 12,
        };
        let [a, b, c] = self.subnet;
        IpAddr::V4(Ipv4Addr::new(a, b, c, host))
    }

    /// The launcher's own address on this network: where servers it runs itself (chaos's
    /// MariaDB) listen for the parts.
    pub fn host_ip(&self) -> IpAddr {
        let [a, b, c] = self.subnet;
        IpAddr::V4(Ipv4Addr::new(a, b, c, 1))
    }

    /// Cuts `a` and `b` off from each other, both ways; each keeps running and reaching the rest.
    pub fn cut(&self, a: Part, b: Part) -> anyhow::Result<()> {
        nft(&self.hub(), &format!("add element bridge chaos cut {{ {} }}", self.pairs(a, b)))
    }

    /// Undoes [`cut`](Self::cut).
    pub fn heal(&self, a: Part, b: Part) -> anyhow::Result<()> {
        nft(&self.hub(), &format!("delete element bridge chaos cut {{ {} }}", self.pairs(a, b)))
    }

    fn pairs(&self, a: Part, b: Part) -> String {
        let (a, b) = (self.ip(a), self.ip(b));
        format!("{a} . {b}, {b} . {a}")
    }

    /// Kills whatever still runs in the namespaces, and removes them (the veths go with them).
    pub fn destroy(&mut self) {
        if !std::mem::take(&mut self.up) {
            return;
        }
        for ns in PARTS.iter().map(|p| self.netns(*p)).chain([self.hub()]) {
            if let Ok(out) = StdCommand::new("ip").args(["netns", "pids", &ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|p| p.parse().ok()) {
                    let _ = crate::processes::send_signal(pid, "KILL");
                }
            }
            let _ = StdCommand::new("ip").args(["netns", "del", &ns]).stderr(Stdio::null()).status();
        }
        let _ = StdCommand::new("ip").args(["link", "del", &format!("{}-r", self.tag)]).stderr(Stdio::null()).status();
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.destroy();
    }
}

/// The hub's filter: a set of (source . destination) pairs whose packets the bridge drops.
const CUT_TABLE: &str = "table bridge chaos {
  set cut { type ipv4_addr . ipv4_addr; }
  chain forward { type filter hook forward priority 0; policy accept; ip saddr . ip daddr @cut drop; }
}";

/// A third octet for 10.77.Y.0/24 that no interface here uses yet.
fn free_subnet() -> anyhow::Result<u8> {
    let out = StdCommand::new("ip").args(["-4", "-o", "addr", "show"]).output().context("running ip addr")?;
    let used = String::from_utf8_lossy(&out.stdout).into_owned();
    let start = u8::try_from(std::process::id() % 200).unwrap_or(0);
    (0..=255_u8)
        .map(|i| start.wrapping_add(i))
        .find(|y| !used.contains(&format!(" 10.77.{y}.")))
        .context("no free 10.77.Y.0/24 subnet")
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    run(StdCommand::new("ip").args(args), &format!("ip {}", args.join(" ")))
}

/// Runs an nft script (`-f -`) inside namespace `ns`.
fn nft(ns: &str, script: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut child = StdCommand::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft")?;
    child.stdin.take().context("nft stdin")?.write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(out.status.success(), "nft `{script}`: {}", String::from_utf8_lossy(&out.stderr).trim());
    Ok(())
}

fn run(cmd: &mut StdCommand, what: &str) -> anyhow::Result<()> {
    let out = cmd.stdout(Stdio::null()).output().with_context(|| format!("running {what}"))?;
    anyhow::ensure!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr).trim());
    Ok(())
}
