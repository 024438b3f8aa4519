//! Which peer addresses may connect: a list of CIDR blocks.
//!
//! An IPv4 peer may show up as `a.b.c.d` or, on a dual-stack socket, as the
//! IPv4-mapped `::ffff:a.b.c.d`. Both are the same peer, so a rule matches an
//! address if it matches either form: `10.0.0.0/8` admits `::ffff:10.1.2.3`,
//! and `::ffff:0:0/96` admits `10.1.2.3`.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::str::FromStr;

/// A block of addresses: an address and a prefix length, e.g. `400::/7`.
///
/// The address has no bits set after the prefix (parsing refuses
/// `10.0.0.1/8` as ambiguous), so equal blocks compare equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    /// `400::/7`: every address of the Mycelium overlay.
    pub const MYCELIUM: Cidr = Cidr {
        addr: IpAddr::V6(Ipv6Addr::new(0x400, 0, 0, 0, 0, 0, 0, 0)),
        prefix_len: 7,
    };

    /// The block of `prefix_len` leading bits of `addr`.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Result<Self, CidrError> {
        let input = alloc::format!("{addr}/{prefix_len}");
        Self::checked(addr, u32::from(prefix_len), input)
    }

    /// Parses `"10.0.0.0/8"`, `"400::/7"`, or a bare address (`"2001:db8::1"`),
    /// which is a block of one (`/32` or `/128`). Whitespace around the entry
    /// is ignored.
    pub fn parse(text: &str) -> Result<Self, CidrError> {
        let text = text.trim();
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((addr_text, prefix_text)) => (addr_text, Some(prefix_text)),
            None => (text, None),
        };
        let Ok(addr) = IpAddr::from_str(addr_text) else {
            return Err(CidrError::BadAddress {
                input: text.to_string(),
            });
        };
        let prefix_len = match prefix_text {
            None => u32::from(bits_of(addr)),
            Some(digits) => parse_prefix(digits).ok_or_else(|| CidrError::BadPrefix {
                input: text.to_string(),
            })?,
        };
        Self::checked(addr, prefix_len, text.to_string())
    }

    fn checked(addr: IpAddr, prefix_len: u32, input: String) -> Result<Self, CidrError> {
        let max = bits_of(addr);
        let Some(prefix_len) = u8::try_from(prefix_len).ok().filter(|len| *len <= max) else {
            return Err(CidrError::PrefixTooLong {
                input,
                prefix_len,
                max,
            });
        };
        let network = Cidr {
            addr: mask(addr, prefix_len),
            prefix_len,
        };
        if network.addr != addr {
            return Err(CidrError::HostBitsSet { input, network });
        }
        Ok(network)
    }

    /// The first address of the block.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// Number of leading bits that addresses in the block share.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `ip`, in either its IPv4 or its IPv4-mapped IPv6 form, lies in
    /// the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let other_form = match ip {
            IpAddr::V4(v4) => Some(IpAddr::V6(v4.to_ipv6_mapped())),
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
        };
        self.contains_exactly(ip) || other_form.is_some_and(|other| self.contains_exactly(other))
    }

    fn contains_exactly(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(ip, self.prefix_len) == self.addr
            }
            _ => false,
        }
    }
}

/// Bits in an address of `addr`'s family.
fn bits_of(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// A prefix length: one to three ASCII digits (so no sign, no spaces).
fn parse_prefix(digits: &str) -> Option<u32> {
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `addr` with every bit after the first `prefix_len` cleared.
/// `prefix_len` is at most the family's bit count.
fn mask(addr: IpAddr, prefix_len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let keep = u32::MAX
                .checked_shl(32 - u32::from(prefix_len.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & keep))
        }
        IpAddr::V6(v6) => {
            let keep = u128::MAX
                .checked_shl(128 - u32::from(prefix_len.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & keep))
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, CidrError> {
        Self::parse(text)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// An allowlist entry that is not a CIDR block or address.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CidrError {
    /// The part before `/` is not an IPv4 or IPv6 address.
    BadAddress {
        /// The entry as written.
        input: String,
    },
    /// The part after `/` is not a decimal number.
    BadPrefix {
        /// The entry as written.
        input: String,
    },
    /// The prefix length is larger than the address has bits.
    PrefixTooLong {
        /// The entry as written.
        input: String,
        /// Prefix length given.
        prefix_len: u32,
        /// 32 for IPv4, 128 for IPv6.
        max: u8,
    },
    /// The address has bits set after the prefix, so the entry is ambiguous.
    HostBitsSet {
        /// The entry as written.
        input: String,
        /// The network the prefix describes.
        network: Cidr,
    },
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadAddress { input } => write!(
                f,
                "bad CIDR {input:?}: not an IPv4 or IPv6 address; \
                 write e.g. \"10.0.0.0/8\", \"400::/7\" or \"2001:db8::1\""
            ),
            Self::BadPrefix { input } => write!(
                f,
                "bad CIDR {input:?}: the prefix length after '/' must be a decimal number"
            ),
            Self::PrefixTooLong {
                input,
                prefix_len,
                max,
            } => {
                let family = if *max == 32 { "IPv4" } else { "IPv6" };
                write!(
                    f,
                    "bad CIDR {input:?}: prefix length {prefix_len} exceeds {max} for {family}"
                )
            }
            Self::HostBitsSet { input, network } => {
                let host_len = if network.addr().is_ipv4() { 32 } else { 128 };
                let host = input.split('/').next().unwrap_or_default();
                write!(
                    f,
                    "bad CIDR {input:?}: address bits are set after the /{} prefix; \
                     write \"{network}\" for the network or \"{host}/{host_len}\" for one host",
                    network.prefix_len()
                )
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for CidrError {}

/// A list of [`Cidr`] blocks; an address is allowed if any block holds it.
/// An empty list allows nobody.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allowlist {
    cidrs: Vec<Cidr>,
}

impl Allowlist {
    /// An allowlist of these blocks.
    pub fn new(cidrs: Vec<Cidr>) -> Self {
        Self { cidrs }
    }

    /// Parses comma-separated entries, e.g. `"400::/7, 127.0.0.1"`. Spaces
    /// around entries and empty entries (a trailing comma) are ignored; the
    /// first bad entry is the error.
    pub fn parse(text: &str) -> Result<Self, CidrError> {
        let cidrs = text
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(Cidr::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { cidrs })
    }

    /// Whether some block holds `ip` (in either IPv4 form, see [`Cidr::contains`]).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.cidrs.iter().any(|cidr| cidr.contains(ip))
    }

    /// The blocks, in the order given.
    pub fn cidrs(&self) -> &[Cidr] {
        &self.cidrs
    }

    /// Whether the list has no blocks (and so allows nobody).
    pub fn is_empty(&self) -> bool {
        self.cidrs.is_empty()
    }
}

impl FromStr for Allowlist {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, CidrError> {
        Self::parse(text)
    }
}

/// Writes the entries joined by `,`, which [`Allowlist::parse`] reads back.
impl fmt::Display for Allowlist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, cidr) in self.cidrs.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{cidr}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_handles_zero_and_full_prefixes() {
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(mask(v4, 0), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(mask(v4, 32), v4);
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(mask(v6, 0), IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        assert_eq!(mask(v6, 128), v6);
    }

    #[test]
    fn mycelium_constant_matches_its_text() {
        assert_eq!(Cidr::parse("400::/7"), Ok(Cidr::MYCELIUM));
        assert_eq!(Cidr::MYCELIUM.to_string(), "400::/7");
    }

    #[test]
    fn new_refuses_long_prefixes() {
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert!(matches!(
            Cidr::new(v4, 33),
            Err(CidrError::PrefixTooLong { max: 32, .. })
        ));
        assert_eq!(Cidr::new(v4, 32).map(|cidr| cidr.prefix_len()), Ok(32));
    }

    #[test]
    fn prefix_must_be_plain_digits() {
        for bad in [
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/ 8",
            "10.0.0.0/0008",
            "::/x",
        ] {
            assert!(
                matches!(Cidr::parse(bad), Err(CidrError::BadPrefix { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn prefix_error_says_what_to_fix() {
        let why = CidrError::PrefixTooLong {
            input: "400::/200".into(),
            prefix_len: 200,
            max: 128,
        };
        assert_eq!(
            why.to_string(),
            "bad CIDR \"400::/200\": prefix length 200 exceeds 128 for IPv6"
        );
    }
}
