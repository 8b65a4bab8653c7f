//! Option negotiation of a read request: blksize (RFC 2348), timeout and tsize (RFC 2349).
//! Unknown or malformed options are left out of the OACK, as RFC 2347 lets a server do.

use std::time::Duration;

use crate::packet::TftpOption;

/// RFC 1350's block size, used when the client negotiates none.
pub(crate) const DEFAULT_BLKSIZE: u16 = 512;
const BLKSIZE_RANGE: std::ops::RangeInclusive<u16> = 8..=65464;
const TIMEOUT_RANGE: std::ops::RangeInclusive<u64> = 1..=255;

/// What a read request's options settle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Negotiated {
    pub blksize: u16,
    /// The client's retransmission interval, if it sent a valid one.
    pub timeout: Option<Duration>,
    /// The OACK's options, in the client's order; empty means "send no OACK".
    pub reply: Vec<(&'static str, String)>,
}

/// Settles `options` for a source of `size` bytes, granting at most `max_blksize`.
pub(crate) fn negotiate(options: &[TftpOption<'_>], size: u64, max_blksize: u16) -> Negotiated {
    let mut out = Negotiated {
        blksize: DEFAULT_BLKSIZE,
        timeout: None,
        reply: Vec::new(),
    };
    for option in options {
        let name = option.name.to_ascii_lowercase();
        // the first valid occurrence of an option counts
        if out.reply.iter().any(|(n, _)| *n == name) {
            continue;
        }
        match name.as_str() {
            "blksize" => {
                if let Some(asked) = option
                    .value
                    .parse()
                    .ok()
                    .filter(|v| BLKSIZE_RANGE.contains(v))
                {
                    out.blksize = asked.min(max_blksize);
                    out.reply.push(("blksize", out.blksize.to_string()));
                }
            }
            "timeout" => {
                if let Some(secs) = option
                    .value
                    .parse()
                    .ok()
                    .filter(|v| TIMEOUT_RANGE.contains(v))
                {
                    out.timeout = Some(Duration::from_secs(secs));
                    out.reply.push(("timeout", secs.to_string()));
                }
            }
            // a read request's tsize is 0; the reply carries the size
            "tsize" if option.value.parse::<u64>().is_ok() => {
                out.reply.push(("tsize", size.to_string()))
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<TftpOption<'a>> {
        pairs
            .iter()
            .map(|&(name, value)| TftpOption { name, value })
            .collect()
    }

    fn reply(n: &Negotiated) -> Vec<(&str, &str)> {
        n.reply.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    #[test]
    fn grants_what_a_pi_asks_within_the_limit() {
        let n = negotiate(
            &opts(&[("tsize", "0"), ("blksize", "1468"), ("timeout", "3")]),
            4096,
            1468,
        );
        assert_eq!(n.blksize, 1468);
        assert_eq!(n.timeout, Some(Duration::from_secs(3)));
        assert_eq!(
            reply(&n),
            [("tsize", "4096"), ("blksize", "1468"), ("timeout", "3")]
        );
    }

    #[test]
    fn caps_the_block_size_and_keeps_case_insensitive_first_occurrences() {
        let n = negotiate(&opts(&[("BLKSIZE", "65464"), ("blksize", "8")]), 0, 1468);
        assert_eq!(n.blksize, 1468);
        assert_eq!(reply(&n), [("blksize", "1468")]);
    }

    #[test]
    fn leaves_out_unknown_and_malformed_options() {
        let n = negotiate(
            &opts(&[
                ("blksize", "7"),
                ("blksize", "x"),
                ("timeout", "0"),
                ("timeout", "256"),
                ("windowsize", "4"),
                ("tsize", "-1"),
            ]),
            10,
            1468,
        );
        assert_eq!(
            n,
            Negotiated {
                blksize: DEFAULT_BLKSIZE,
                timeout: None,
                reply: vec![]
            }
        );
        // a malformed first occurrence does not hide a valid later one
        let n = negotiate(&opts(&[("blksize", "x"), ("blksize", "1024")]), 10, 1468);
        assert_eq!(n.blksize, 1024);
    }
}
