//! The small subset of URL parsing the runner's REQUESTS need:
//! `https://host[:port]/path`, host being an IPv4 literal, a bracketed IPv6
//! literal or a name resolved through the system resolver.

use std::net::{SocketAddr, ToSocketAddrs};

#[derive(Clone, Debug)]
pub struct Url {
    /// host[:port] exactly as written, for :authority.
    pub authority: String,
    /// Path including the leading '/', for the request line / :path.
    pub path: String,
    /// Resolved server address.
    pub addr: SocketAddr,
    /// Where the body goes inside DOWNLOADS.
    pub file_name: String,
}

pub fn parse(s: &str) -> Result<Url, String> {
    let rest = s.strip_prefix("https://").ok_or_else(|| format!("{s}: only https:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("{s}: empty host"));
    }

    let (host, port) = split_host_port(authority).map_err(|e| format!("{s}: {e}"))?;
    let addr = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("{s}: cannot resolve {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{s}: {host} has no address"))?,
    };

    // The file name is the last path segment, without any query string.
    let without_query = path.split(['?', '#']).next().unwrap_or("");
    let file_name = without_query.rsplit('/').next().unwrap_or("").to_string();
    if file_name.is_empty() || file_name == "." || file_name == ".." {
        return Err(format!("{s}: no file name in the path"));
    }

    Ok(Url { authority: authority.to_string(), path: path.to_string(), addr, file_name })
}

fn split_host_port(authority: &str) -> Result<(&str, u16), String> {
    if let Some(v6) = authority.strip_prefix('[') {
        let end = v6.find(']').ok_or("unterminated [IPv6] literal")?;
        let host = &v6[..end];
        let after = &v6[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("bad port {p:?}"))?,
            None if after.is_empty() => 443,
            None => return Err(format!("junk after IPv6 literal: {after:?}")),
        };
        return Ok((host, port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Ok((h, p.parse().map_err(|_| format!("bad port {p:?}"))?)),
        None => Ok((authority, 443)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let u = parse("https://127.0.0.1:4433/a/b.bin").unwrap();
        assert_eq!(u.addr, "127.0.0.1:4433".parse().unwrap());
        assert_eq!(u.path, "/a/b.bin");
        assert_eq!(u.file_name, "b.bin");
        assert_eq!(u.authority, "127.0.0.1:4433");

        let u = parse("https://[::1]:443/x?y=1").unwrap();
        assert_eq!(u.addr, "[::1]:443".parse().unwrap());
        assert_eq!(u.file_name, "x");

        let u = parse("https://[::1]/x").unwrap();
        assert_eq!(u.addr.port(), 443);

        assert!(parse("http://127.0.0.1/x").is_err());
        assert!(parse("https://127.0.0.1:4433/").is_err());
        assert!(parse("https://127.0.0.1:99999/x").is_err());
    }
}
