//! Host ports: choosing free ones and reporting what was published.

use super::*;

pub(super) fn report_ports(reporter: &dyn Reporter, running: &Running) {
    for port in &running.ports {
        reporter.report(Event::PortForwarded {
            resource: running.name.clone(),
            remote_port: port.container_port,
            local_address: port.local_address.to_string(),
        });
    }
}

/// Whether an engine message says a host port is taken.
pub(super) fn is_port_conflict(message: &str) -> bool {
    message.contains("address already in use") || message.contains("port is already allocated")
}

/// The local address of a `portForward` entry: `127.0.0.1` by default.
pub(super) fn parse_address(address: Option<&str>) -> Result<IpAddr, DeployError> {
    match address.map(str::trim).filter(|a| !a.is_empty()) {
        None | Some("localhost") => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        Some(address) => address
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| DeployError::Listen {
                address: address.to_owned(),
                reason: "not an IP address; portForward `address` takes one such as 127.0.0.1"
                    .to_owned(),
            }),
    }
}

/// Whether nothing listens on `address` now.
pub(super) fn is_free(address: SocketAddr) -> bool {
    TcpListener::bind(address).is_ok()
}

/// The local address for `port`: its wanted port if free, else the next free one, with a
/// warning naming both.
pub(super) fn choose_local_port(
    ip: IpAddr,
    port: &DockerPort,
    container: &str,
    reserved: &BTreeSet<SocketAddr>,
    reporter: &dyn Reporter,
) -> Result<SocketAddr, DeployError> {
    let explicit = port.local_port.filter(|p| *p != 0);
    let wanted = match explicit {
        Some(local) => local,
        None if port.container_port >= 1024 => port.container_port,
        None => port.container_port.saturating_add(PRIVILEGED_PORT_OFFSET),
    };
    let chosen = (wanted..=u16::MAX)
        .map(|p| SocketAddr::new(ip, p))
        .find(|a| !reserved.contains(a) && is_free(*a))
        .ok_or_else(|| DeployError::Listen {
            address: SocketAddr::new(ip, wanted).to_string(),
            reason: format!("it and every port above it are in use (for {container})"),
        })?;
    if chosen.port() != wanted {
        warn(
            reporter,
            format!(
                "port {wanted} is already in use on {ip}; using port {} instead \
                 ({chosen} forwards to {container}:{})",
                chosen.port(),
                port.container_port
            ),
        );
    } else if explicit.is_none() && port.container_port < 1024 {
        reporter.report(Event::Message {
            source: SOURCE,
            level: Level::Info,
            text: format!(
                "port {} is privileged; forwarding {chosen} to {container}:{}",
                port.container_port, port.container_port
            ),
        });
    }
    Ok(chosen)
}
