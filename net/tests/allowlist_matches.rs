//! Allowlist parsing, matching (IPv4-mapped IPv6 included) and error texts.
use std::net::IpAddr;

use hypha_net::{Allowlist, Cidr, CidrError};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

#[test]
fn parses_blocks_and_bare_addresses() -> TestResult {
    for (text, shown, prefix_len) in [
        ("400::/7", "400::/7", 7),
        ("2001:db8::1", "2001:db8::1/128", 128),
        ("127.0.0.1/32", "127.0.0.1/32", 32),
        ("10.0.0.0/8", "10.0.0.0/8", 8),
        ("  0.0.0.0/0 ", "0.0.0.0/0", 0),
        ("::/0", "::/0", 0),
        ("127.0.0.1", "127.0.0.1/32", 32),
    ] {
        let cidr: Cidr = text.parse()?;
        assert_eq!(cidr.to_string(), shown);
        assert_eq!(cidr.prefix_len(), prefix_len);
    }
    Ok(())
}

#[test]
fn mycelium_block_holds_overlay_addresses_only() -> TestResult {
    let list = Allowlist::parse("400::/7")?;
    assert!(list.contains(ip("400::1")));
    assert!(list.contains(ip("5ff:ffff::1")));
    assert!(list.contains(ip("4a1:2b3:c4d::9")));
    assert!(!list.contains(ip("600::1")));
    assert!(!list.contains(ip("3ff::1")));
    assert!(!list.contains(ip("10.0.0.1")));
    Ok(())
}

#[test]
fn lists_match_any_entry() -> TestResult {
    let list = Allowlist::parse("400::/7, 127.0.0.1/32,10.0.0.0/8, 2001:db8::1,")?;
    assert_eq!(list.cidrs().len(), 4);
    assert!(list.contains(ip("127.0.0.1")));
    assert!(!list.contains(ip("127.0.0.2")));
    assert!(list.contains(ip("10.255.0.1")));
    assert!(!list.contains(ip("11.0.0.1")));
    assert!(list.contains(ip("2001:db8::1")));
    assert!(!list.contains(ip("2001:db8::2")));
    assert_eq!(
        list.to_string(),
        "400::/7,127.0.0.1/32,10.0.0.0/8,2001:db8::1/128"
    );
    assert_eq!(Allowlist::parse(&list.to_string())?, list);
    Ok(())
}

#[test]
fn ipv4_mapped_addresses_match_ipv4_rules() -> TestResult {
    let list = Allowlist::parse("10.0.0.0/8,127.0.0.1")?;
    assert!(list.contains(ip("::ffff:10.1.2.3")));
    assert!(list.contains(ip("::ffff:127.0.0.1")));
    assert!(!list.contains(ip("::ffff:11.1.2.3")));
    // Not mapped: the IPv4-compatible form and a plain v6 with the same bits.
    assert!(!list.contains(ip("::10.1.2.3")));
    assert!(!list.contains(ip("64:ff9b::10.1.2.3")));
    Ok(())
}

#[test]
fn mapped_ipv6_rules_match_ipv4_addresses() -> TestResult {
    let list = Allowlist::parse("::ffff:10.0.0.0/104")?;
    assert!(list.contains(ip("10.9.9.9")));
    assert!(list.contains(ip("::ffff:10.9.9.9")));
    assert!(!list.contains(ip("11.0.0.1")));
    Ok(())
}

#[test]
fn an_empty_list_allows_nobody() -> TestResult {
    let list = Allowlist::parse(" , ")?;
    assert!(list.is_empty());
    assert!(!list.contains(ip("127.0.0.1")));
    Ok(())
}

#[test]
fn errors_say_what_to_fix() {
    let cases = [
        (
            "400::/200",
            "bad CIDR \"400::/200\": prefix length 200 exceeds 128 for IPv6",
        ),
        (
            "10.0.0.0/33",
            "bad CIDR \"10.0.0.0/33\": prefix length 33 exceeds 32 for IPv4",
        ),
        (
            "10.0.0.1/8",
            "bad CIDR \"10.0.0.1/8\": address bits are set after the /8 prefix; \
             write \"10.0.0.0/8\" for the network or \"10.0.0.1/32\" for one host",
        ),
        (
            "fe80::1%eth0",
            "bad CIDR \"fe80::1%eth0\": not an IPv4 or IPv6 address; \
             write e.g. \"10.0.0.0/8\", \"400::/7\" or \"2001:db8::1\"",
        ),
        (
            "10.0.0.0/x",
            "bad CIDR \"10.0.0.0/x\": the prefix length after '/' must be a decimal number",
        ),
    ];
    for (text, message) in cases {
        let error = Cidr::parse(text).err().map(|error| error.to_string());
        assert_eq!(error.as_deref(), Some(message), "{text}");
    }
}

#[test]
fn a_list_reports_its_first_bad_entry() {
    assert_eq!(
        Allowlist::parse("10.0.0.0/8, nonsense, 400::/200"),
        Err(CidrError::BadAddress {
            input: "nonsense".to_string()
        })
    );
}

#[test]
fn host_bits_error_suggests_the_network() -> TestResult {
    let Err(CidrError::HostBitsSet { network, .. }) = Cidr::parse("400::1/7") else {
        return Err("host bits accepted".into());
    };
    assert_eq!(network, Cidr::MYCELIUM);
    Ok(())
}
