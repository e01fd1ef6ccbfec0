//! The standard device metrics from `/proc/net/{tcp,tcp6,udp,udp6,dev}`: listening ports,
//! established TCP connections and traffic counters.
//!
//! Addresses in `/proc/net/tcp*` and `udp*` are hexadecimal words in the kernel's byte
//! order; IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`) are reported as IPv4. A listener
//! bound to a wildcard address (`0.0.0.0` or `::`) is reported without an interface, which
//! means every interface. Other local addresses are mapped to the interface that has them
//! (`getifaddrs`), and addresses in `127.0.0.0/8` or `::1` to the loopback interface.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::CStr;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use super::error::DefenderError;
use super::report::{
    ConnectionList, DeviceMetrics, ListeningPort, NetworkStats, PortList, TcpConnection,
};

/// Entries listed per port or connection list by default; `total` still counts all of them.
pub const DEFAULT_MAX_LISTED: usize = 64;

const TCP_ESTABLISHED: u8 = 0x01;
const TCP_CLOSE: u8 = 0x07;
const TCP_LISTEN: u8 = 0x0A;

/// One line of `/proc/net/{tcp,tcp6,udp,udp6}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketEntry {
    /// The local address and port.
    pub local: SocketAddr,
    /// The remote address and port; all zero when there is no peer.
    pub remote: SocketAddr,
    /// The kernel's TCP state number (UDP sockets use 0x07 unconnected, 0x01 connected).
    pub state: u8,
}

/// Parses the lines of a `/proc/net/{tcp,tcp6,udp,udp6}` file; the header line and lines
/// that do not have the expected fields are skipped.
pub fn parse_sockets(text: &str) -> Vec<SocketEntry> {
    text.lines().skip(1).filter_map(parse_socket_line).collect()
}

fn parse_socket_line(line: &str) -> Option<SocketEntry> {
    let mut fields = line.split_whitespace();
    let _slot = fields.next()?;
    let local = parse_endpoint(fields.next()?)?;
    let remote = parse_endpoint(fields.next()?)?;
    let state = u8::from_str_radix(fields.next()?, 16).ok()?;
    Some(SocketEntry { local, remote, state })
}

/// Parses `0100007F:0016` or a 32-digit IPv6 form. The kernel prints each 32-bit word of the
/// address as a native-endian integer, so the bytes come back with `to_ne_bytes`.
fn parse_endpoint(text: &str) -> Option<SocketAddr> {
    let (address, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |hex: &str| u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes);
    let ip = match address.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(address)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(address.get(i * 8..i * 8 + 8)?)?);
            }
            let ip = Ipv6Addr::from(bytes);
            ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Receive and transmit counters of one interface, from `/proc/net/dev`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterfaceCounters {
    /// Bytes received.
    pub bytes_in: u64,
    /// Packets received.
    pub packets_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Packets sent.
    pub packets_out: u64,
}

/// Parses `/proc/net/dev` into counters by interface name.
pub fn parse_dev(text: &str) -> BTreeMap<String, InterfaceCounters> {
    let mut counters = BTreeMap::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else { continue };
        let values: Vec<u64> = rest.split_whitespace().filter_map(|v| v.parse().ok()).collect();
        if values.len() < 10 {
            continue;
        }
        let entry = InterfaceCounters {
            bytes_in: values[0],
            packets_in: values[1],
            bytes_out: values[8],
            packets_out: values[9],
        };
        counters.insert(name.trim().to_owned(), entry);
    }
    counters
}

/// A map from local addresses to the interfaces that have them.
#[derive(Clone, Debug, Default)]
pub struct InterfaceMap {
    by_address: HashMap<IpAddr, String>,
    loopback: Option<String>,
}

impl InterfaceMap {
    /// Reads the addresses of this host's interfaces with `getifaddrs`.
    pub fn from_system() -> io::Result<Self> {
        let mut map = InterfaceMap::default();
        for (name, address, is_loopback) in interface_addresses()? {
            if is_loopback && map.loopback.is_none() {
                map.loopback = Some(name.clone());
            }
            if let Some(address) = address {
                map.by_address.entry(address).or_insert(name);
            }
        }
        Ok(map)
    }

    /// Adds an address by hand, for fixtures and tests.
    pub fn insert(&mut self, address: IpAddr, interface: impl Into<String>) {
        let interface = interface.into();
        if address.is_loopback() && self.loopback.is_none() {
            self.loopback = Some(interface.clone());
        }
        self.by_address.insert(address, interface);
    }

    /// Returns the interface holding `address`; `None` for a wildcard or unknown address.
    pub fn lookup(&self, address: IpAddr) -> Option<&str> {
        if address.is_unspecified() {
            return None;
        }
        if let Some(name) = self.by_address.get(&address) {
            return Some(name);
        }
        if address.is_loopback() { self.loopback.as_deref() } else { None }
    }

    /// Returns whether `name` is the loopback interface (`lo` counts as one even when unknown).
    pub fn is_loopback(&self, name: &str) -> bool {
        name == "lo" || self.loopback.as_deref() == Some(name)
    }
}

/// Returns (name, address, is loopback) for every entry of `getifaddrs`.
fn interface_addresses() -> io::Result<Vec<(String, Option<IpAddr>, bool)>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `head` is a valid place for the list pointer; on success the list stays valid
    // until `freeifaddrs` below, and nothing keeps a pointer into it after that.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut entries = Vec::new();
    let mut current = head;
    while !current.is_null() {
        // SAFETY: `current` is a non-null node of the list returned by `getifaddrs`.
        let entry = unsafe { &*current };
        // SAFETY: `ifa_name` is a NUL-terminated string owned by the list.
        let name = unsafe { CStr::from_ptr(entry.ifa_name) }.to_string_lossy().into_owned();
        let is_loopback = entry.ifa_flags & (libc::IFF_LOOPBACK as u32) != 0;
        let address = if entry.ifa_addr.is_null() {
            None
        } else {
            // SAFETY: `ifa_addr` is non-null and points to a sockaddr whose `sa_family` tells
            // which larger struct it is; each cast below matches its family.
            unsafe {
                match i32::from((*entry.ifa_addr).sa_family) {
                    libc::AF_INET => {
                        let v4 = &*(entry.ifa_addr as *const libc::sockaddr_in);
                        Some(IpAddr::V4(Ipv4Addr::from(v4.sin_addr.s_addr.to_ne_bytes())))
                    }
                    libc::AF_INET6 => {
                        let v6 = &*(entry.ifa_addr as *const libc::sockaddr_in6);
                        Some(IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.s6_addr)))
                    }
                    _ => None,
                }
            }
        };
        entries.push((name, address, is_loopback));
        current = entry.ifa_next;
    }
    // SAFETY: `head` came from a successful `getifaddrs` and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(entries)
}

/// Reads the device metrics from a `/proc/net` directory and keeps the traffic counters of
/// the previous read, so that `network_stats` contains the traffic since then.
#[derive(Debug)]
pub struct NetStat {
    root: PathBuf,
    max_listed: usize,
    previous: Option<BTreeMap<String, InterfaceCounters>>,
}

impl Default for NetStat {
    fn default() -> Self {
        NetStat::with_root("/proc/net")
    }
}

impl NetStat {
    /// Reads the files of `root` instead of `/proc/net`, for fixtures.
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        NetStat { root: root.into(), max_listed: DEFAULT_MAX_LISTED, previous: None }
    }

    /// Sets how many entries each port or connection list shows (default 64).
    pub fn max_listed(mut self, max: usize) -> Self {
        self.max_listed = max;
        self
    }

    /// Reads the metrics now. `network_stats` is absent on the first call, and afterwards
    /// contains the traffic since the previous call; an interface whose counters went down
    /// (driver reload, 32-bit wrap) counts from zero.
    pub fn collect(&mut self, interfaces: &InterfaceMap) -> Result<DeviceMetrics, DefenderError> {
        let mut tcp = self.read_sockets("tcp")?;
        tcp.extend(self.read_sockets("tcp6")?);
        let mut udp = self.read_sockets("udp")?;
        udp.extend(self.read_sockets("udp6")?);

        let listening = |entries: &[SocketEntry], listens: fn(&SocketEntry) -> bool| {
            let ports: BTreeSet<ListeningPort> = entries
                .iter()
                .filter(|e| listens(e))
                .map(|e| ListeningPort {
                    interface: interfaces.lookup(e.local.ip()).map(str::to_owned),
                    port: e.local.port(),
                })
                .collect();
            let total = ports.len() as u64;
            PortList { ports: ports.into_iter().take(self.max_listed).collect(), total }
        };
        let tcp_ports = listening(&tcp, |e| e.state == TCP_LISTEN);
        let udp_ports = listening(&udp, is_udp_listener);

        let connections: BTreeSet<TcpConnection> = tcp
            .iter()
            .filter(|e| e.state == TCP_ESTABLISHED)
            .map(|e| TcpConnection {
                local_interface: interfaces.lookup(e.local.ip()).map(str::to_owned),
                local_port: e.local.port(),
                remote_addr: e.remote,
            })
            .collect();
        let total = connections.len() as u64;
        let connections = ConnectionList {
            connections: connections.into_iter().take(self.max_listed).collect(),
            total,
        };

        let counters: BTreeMap<String, InterfaceCounters> = parse_dev(&self.read("dev")?)
            .into_iter()
            .filter(|(name, _)| !interfaces.is_loopback(name))
            .collect();
        let network_stats =
            self.previous.as_ref().map(|previous| traffic_since(previous, &counters));
        self.previous = Some(counters);

        Ok(DeviceMetrics {
            listening_tcp_ports: Some(tcp_ports),
            listening_udp_ports: Some(udp_ports),
            network_stats,
            tcp_connections: Some(connections),
        })
    }

    fn read_sockets(&self, name: &str) -> Result<Vec<SocketEntry>, DefenderError> {
        Ok(parse_sockets(&self.read(name)?))
    }

    /// Reads one file; a missing file (no IPv6 in the kernel) reads as empty.
    fn read(&self, name: &str) -> Result<String, DefenderError> {
        let path = self.root.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
            Err(source) => Err(DefenderError::Proc { path, source }),
        }
    }

    /// Returns the directory read.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// A UDP socket listens when it is bound to a port and has no remote peer; a connected UDP
/// socket (a DNS query in flight, say) does not.
fn is_udp_listener(entry: &SocketEntry) -> bool {
    entry.state == TCP_CLOSE
        && entry.local.port() != 0
        && entry.remote.port() == 0
        && entry.remote.ip().is_unspecified()
}

/// Sums the traffic of every interface since `previous`. An interface seen for the first time
/// only sets its baseline.
pub fn traffic_since(
    previous: &BTreeMap<String, InterfaceCounters>,
    current: &BTreeMap<String, InterfaceCounters>,
) -> NetworkStats {
    // A counter below its previous value was reset: the new value is the traffic since then.
    let delta = |now: u64, before: u64| if now >= before { now - before } else { now };
    let mut stats = NetworkStats::default();
    for (name, now) in current {
        let Some(before) = previous.get(name) else { continue };
        stats.bytes_in += delta(now.bytes_in, before.bytes_in);
        stats.bytes_out += delta(now.bytes_out, before.bytes_out);
        stats.packets_in += delta(now.packets_in, before.packets_in);
        stats.packets_out += delta(now.packets_out, before.packets_out);
    }
    stats
}
