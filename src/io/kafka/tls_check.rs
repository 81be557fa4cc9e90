//! Examining a broker's TLS certificate ourselves, once, when librdkafka says
//! only `certificate verify failed`: was it the CA, or the host name?

use openssl::ssl::{HandshakeError, SslConnector, SslMethod};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The client settings a diagnosis needs (never a secret).
#[derive(Debug, Default, Clone)]
pub struct TlsSettings {
    pub security_protocol: String,
    pub ca_location: Option<String>,
    pub verify_hostname: bool,
}

impl TlsSettings {
    /// From the `kafka.client` properties.
    pub fn from_client(client: &std::collections::BTreeMap<String, String>) -> Self {
        let protocol = client
            .get("security.protocol")
            .map(|p| p.to_ascii_uppercase())
            .unwrap_or_else(|| "PLAINTEXT".into());
        TlsSettings {
            security_protocol: protocol,
            ca_location: client.get("ssl.ca.location").cloned(),
            verify_hostname: client
                .get("ssl.endpoint.identification.algorithm")
                .is_none_or(|a| a.eq_ignore_ascii_case("https")),
        }
    }
}

/// A sentence saying why the certificate of `broker` (`host:port`) is refused
/// with these settings.
pub fn examine(broker: &str, settings: &TlsSettings) -> String {
    let Some((host, _)) = broker.rsplit_once(':') else {
        return format!("cannot examine the certificate of `{broker}`");
    };
    let ca = settings
        .ca_location
        .clone()
        .unwrap_or_else(|| "the system's CA store".into());
    match handshake(broker, host, settings, false) {
        Err(e) => format!("the broker's certificate is not signed by a CA in {ca} ({e})"),
        Ok(names) if !settings.verify_hostname => format!(
            "the broker's certificate verifies here against {ca} (names: {})",
            names.join(", ")
        ),
        Ok(names) => match handshake(broker, host, settings, true) {
            Err(_) => format!(
                "the broker's certificate is signed by a trusted CA but not issued for `{host}`: it names {}; connect by one of those names",
                if names.is_empty() { "no host".to_string() } else { names.join(", ") }
            ),
            Ok(_) => format!(
                "the broker's certificate verifies here for `{host}` against {ca}; check the other ssl.* settings"
            ),
        },
    }
}

/// A TLS handshake with `broker`: the names its certificate is issued for, or
/// why verification failed.
fn handshake(
    broker: &str,
    host: &str,
    settings: &TlsSettings,
    verify_hostname: bool,
) -> Result<Vec<String>, String> {
    let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(|e| e.to_string())?;
    if let Some(ca) = &settings.ca_location {
        let loaded = if std::path::Path::new(ca).is_dir() {
            builder.load_verify_locations(None, Some(std::path::Path::new(ca)))
        } else {
            builder.set_ca_file(ca)
        };
        loaded.map_err(|e| format!("cannot read {ca}: {e}"))?;
    }
    let connector = builder.build();
    let mut config = connector.configure().map_err(|e| e.to_string())?;
    config.set_verify_hostname(verify_hostname);
    let addr = broker
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    match config.connect(host, stream) {
        Ok(tls) => Ok(tls
            .ssl()
            .peer_certificate()
            .and_then(|c| c.subject_alt_names())
            .map(|names| {
                names
                    .iter()
                    .filter_map(|n| {
                        n.dnsname().map(str::to_string).or_else(|| {
                            n.ipaddress().and_then(|ip| match ip.len() {
                                4 => Some(
                                    std::net::Ipv4Addr::from(<[u8; 4]>::try_from(ip).ok()?)
                                        .to_string(),
                                ),
                                16 => Some(
                                    std::net::Ipv6Addr::from(<[u8; 16]>::try_from(ip).ok()?)
                                        .to_string(),
                                ),
                                _ => None,
                            })
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()),
        Err(HandshakeError::Failure(mid)) => {
            Err(mid.ssl().verify_result().error_string().to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}
