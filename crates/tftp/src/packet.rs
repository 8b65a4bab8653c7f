//! TFTP packets (RFC 1350, options of RFC 2347): a pure parser over bytes and an encoder.
//!
//! [`parse`] never panics and never allocates more than the option list; it is the entry point
//! of the fuzz target.

use std::fmt;

/// Operation codes of RFC 1350 and RFC 2347 (OACK).
mod opcode {
    pub const RRQ: u16 = 1;
    pub const WRQ: u16 = 2;
    pub const DATA: u16 = 3;
    pub const ACK: u16 = 4;
    pub const ERROR: u16 = 5;
    pub const OACK: u16 = 6;
}

/// One TFTP packet, borrowing from the datagram it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Read request.
    Rrq(Request<'a>),
    /// Write request.
    Wrq(Request<'a>),
    /// A data block; `data` is at most the negotiated block size.
    Data { block: u16, data: &'a [u8] },
    /// Acknowledgement of a data block (block 0 acknowledges an OACK).
    Ack { block: u16 },
    /// An error; ends the transfer. `message` is as sent (not necessarily UTF-8).
    Error { code: ErrorCode, message: &'a [u8] },
    /// Option acknowledgement (RFC 2347).
    OAck { options: Vec<TftpOption<'a>> },
}

/// The body of a read or write request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// The file name exactly as sent; see [`crate::RequestPath`] for what is served.
    pub filename: &'a [u8],
    pub mode: Mode,
    /// Options (RFC 2347) in the order sent; names keep the client's case.
    pub options: Vec<TftpOption<'a>>,
}

/// A transfer mode of RFC 1350.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Netascii,
    Octet,
    Mail,
}

impl Mode {
    fn from_bytes(raw: &[u8]) -> Option<Mode> {
        [
            ("netascii", Mode::Netascii),
            ("octet", Mode::Octet),
            ("mail", Mode::Mail),
        ]
        .into_iter()
        .find(|(name, _)| raw.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, mode)| mode)
    }

    /// The mode's name as RFC 1350 spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Netascii => "netascii",
            Mode::Octet => "octet",
            Mode::Mail => "mail",
        }
    }
}

/// One `name`/`value` option pair (RFC 2347). Both are ASCII in practice; non-UTF-8 is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TftpOption<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

/// An error code of RFC 1350 (0–7) and RFC 2347 (8). Other values are kept as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    pub const NOT_DEFINED: ErrorCode = ErrorCode(0);
    pub const FILE_NOT_FOUND: ErrorCode = ErrorCode(1);
    pub const ACCESS_VIOLATION: ErrorCode = ErrorCode(2);
    pub const DISK_FULL: ErrorCode = ErrorCode(3);
    pub const ILLEGAL_OPERATION: ErrorCode = ErrorCode(4);
    pub const UNKNOWN_TID: ErrorCode = ErrorCode(5);
    pub const FILE_EXISTS: ErrorCode = ErrorCode(6);
    pub const NO_SUCH_USER: ErrorCode = ErrorCode(7);
    pub const OPTION_REFUSED: ErrorCode = ErrorCode(8);
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            0 => "not defined",
            1 => "file not found",
            2 => "access violation",
            3 => "disk full",
            4 => "illegal operation",
            5 => "unknown transfer id",
            6 => "file exists",
            7 => "no such user",
            8 => "option refused",
            _ => return write!(f, "code {}", self.0),
        };
        write!(f, "{} ({name})", self.0)
    }
}

/// Why a datagram is not a TFTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("datagram of {0} bytes is too short for a TFTP packet")]
    TooShort(usize),
    #[error("unknown opcode {0}")]
    UnknownOpcode(u16),
    #[error("{0} is not NUL-terminated")]
    Unterminated(&'static str),
    #[error("unknown transfer mode")]
    UnknownMode,
    #[error("option {0:?} has no value")]
    OptionWithoutValue(String),
    #[error("an option name or value is not UTF-8")]
    OptionNotUtf8,
    #[error("{kind} packet has {extra} trailing bytes")]
    Trailing { kind: &'static str, extra: usize },
}

impl ParseError {
    fn trailing(kind: &'static str, extra: usize) -> ParseError {
        ParseError::Trailing { kind, extra }
    }
}

/// Parses one datagram. Pure: the same bytes always give the same answer, and no input panics.
pub fn parse(datagram: &[u8]) -> Result<Packet<'_>, ParseError> {
    if datagram.len() < 2 {
        return Err(ParseError::TooShort(datagram.len()));
    }
    let op = u16::from_be_bytes([datagram[0], datagram[1]]);
    let body = &datagram[2..];
    match op {
        opcode::RRQ => parse_request(body).map(Packet::Rrq),
        opcode::WRQ => parse_request(body).map(Packet::Wrq),
        opcode::DATA => {
            let block = block_number(datagram)?;
            Ok(Packet::Data {
                block,
                data: &datagram[4..],
            })
        }
        opcode::ACK => {
            let block = block_number(datagram)?;
            match datagram.len() - 4 {
                0 => Ok(Packet::Ack { block }),
                extra => Err(ParseError::trailing("ACK", extra)),
            }
        }
        opcode::ERROR => {
            let code = ErrorCode(block_number(datagram)?);
            // Some clients omit the message's final NUL; its text is only logged, so accept it.
            let rest = &datagram[4..];
            let message = match rest.iter().position(|&b| b == 0) {
                Some(end) if end + 1 == rest.len() => &rest[..end],
                Some(end) => return Err(ParseError::trailing("ERROR", rest.len() - end - 1)),
                None => rest,
            };
            Ok(Packet::Error { code, message })
        }
        opcode::OACK => parse_options(body).map(|options| Packet::OAck { options }),
        other => Err(ParseError::UnknownOpcode(other)),
    }
}

fn block_number(datagram: &[u8]) -> Result<u16, ParseError> {
    match datagram {
        [_, _, hi, lo, ..] => Ok(u16::from_be_bytes([*hi, *lo])),
        _ => Err(ParseError::TooShort(datagram.len())),
    }
}

fn parse_request(body: &[u8]) -> Result<Request<'_>, ParseError> {
    let (filename, rest) = split_field(body, "file name")?;
    let (mode, rest) = split_field(rest, "mode")?;
    let mode = Mode::from_bytes(mode).ok_or(ParseError::UnknownMode)?;
    Ok(Request {
        filename,
        mode,
        options: parse_options(rest)?,
    })
}

fn parse_options(mut rest: &[u8]) -> Result<Vec<TftpOption<'_>>, ParseError> {
    let mut options = Vec::new();
    while !rest.is_empty() {
        let (name, after_name) = split_field(rest, "option name")?;
        let name = std::str::from_utf8(name).map_err(|_| ParseError::OptionNotUtf8)?;
        let (value, after_value) = split_field(after_name, "option value")
            .map_err(|_| ParseError::OptionWithoutValue(name.to_owned()))?;
        let value = std::str::from_utf8(value).map_err(|_| ParseError::OptionNotUtf8)?;
        options.push(TftpOption { name, value });
        rest = after_value;
    }
    Ok(options)
}

/// Splits a NUL-terminated field off the front of `bytes`.
fn split_field<'a>(
    bytes: &'a [u8],
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), ParseError> {
    let end = bytes
        .iter()
        .position(|&b| b == 0)
        .ok_or(ParseError::Unterminated(what))?;
    Ok((&bytes[..end], &bytes[end + 1..]))
}

impl Packet<'_> {
    /// Appends the packet's wire form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Packet::Rrq(req) | Packet::Wrq(req) => {
                let op = if matches!(self, Packet::Rrq(_)) {
                    opcode::RRQ
                } else {
                    opcode::WRQ
                };
                out.extend_from_slice(&op.to_be_bytes());
                push_field(out, req.filename);
                push_field(out, req.mode.as_str().as_bytes());
                push_options(out, &req.options);
            }
            Packet::Data { block, data } => {
                out.extend_from_slice(&data_header(*block));
                out.extend_from_slice(data);
            }
            Packet::Ack { block } => {
                out.extend_from_slice(&opcode::ACK.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
            }
            Packet::Error { code, message } => {
                out.extend_from_slice(&opcode::ERROR.to_be_bytes());
                out.extend_from_slice(&code.0.to_be_bytes());
                push_field(out, message);
            }
            Packet::OAck { options } => {
                out.extend_from_slice(&opcode::OACK.to_be_bytes());
                push_options(out, options);
            }
        }
    }

    /// The packet's wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// The four header bytes of a DATA packet; the transfer writes the payload right after them.
pub(crate) fn data_header(block: u16) -> [u8; 4] {
    let [op_hi, op_lo] = opcode::DATA.to_be_bytes();
    let [hi, lo] = block.to_be_bytes();
    [op_hi, op_lo, hi, lo]
}

/// An ERROR packet's wire form.
pub(crate) fn error_bytes(code: ErrorCode, message: &str) -> Vec<u8> {
    Packet::Error {
        code,
        message: message.as_bytes(),
    }
    .to_bytes()
}

fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(field);
    out.push(0);
}

fn push_options(out: &mut Vec<u8>, options: &[TftpOption<'_>]) {
    for option in options {
        push_field(out, option.name.as_bytes());
        push_field(out, option.value.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curl_read_request_with_options() {
        // what curl 7.88 sends for `curl --tftp-blksize 1468 tftp://host/a/b.txt`
        let wire = b"\x00\x01a/b.txt\x00octet\x00tsize\x000\x00blksize\x001468\x00timeout\x001\x00";
        let Packet::Rrq(req) = parse(wire).unwrap() else {
            panic!("not an RRQ")
        };
        assert_eq!(req.filename, b"a/b.txt");
        assert_eq!(req.mode, Mode::Octet);
        let pairs: Vec<_> = req.options.iter().map(|o| (o.name, o.value)).collect();
        assert_eq!(
            pairs,
            [("tsize", "0"), ("blksize", "1468"), ("timeout", "1")]
        );
        assert_eq!(Packet::Rrq(req).to_bytes(), wire);
    }

    #[test]
    fn mode_is_case_insensitive() {
        let Packet::Wrq(req) = parse(b"\x00\x02f\x00NetASCII\x00").unwrap() else {
            panic!()
        };
        assert_eq!(req.mode, Mode::Netascii);
        assert!(req.options.is_empty());
    }

    #[test]
    fn every_packet_kind_round_trips() {
        let packets = [
            Packet::Data {
                block: 65535,
                data: b"xyz",
            },
            Packet::Data {
                block: 0,
                data: b"",
            },
            Packet::Ack { block: 7 },
            Packet::Error {
                code: ErrorCode::FILE_NOT_FOUND,
                message: b"nope",
            },
            Packet::OAck {
                options: vec![TftpOption {
                    name: "blksize",
                    value: "1468",
                }],
            },
        ];
        for packet in packets {
            assert_eq!(parse(&packet.to_bytes()).unwrap(), packet);
        }
    }

    #[test]
    fn error_without_final_nul_is_accepted() {
        let packet = parse(b"\x00\x05\x00\x00early terminate").unwrap();
        assert_eq!(
            packet,
            Packet::Error {
                code: ErrorCode(0),
                message: b"early terminate"
            }
        );
    }

    #[test]
    fn malformed_datagrams_are_refused_with_a_reason() {
        let cases: [(&[u8], ParseError); 9] = [
            (b"", ParseError::TooShort(0)),
            (b"\x00", ParseError::TooShort(1)),
            (b"\x00\x04\x00", ParseError::TooShort(3)),
            (b"\x00\x09", ParseError::UnknownOpcode(9)),
            (b"\x00\x01file", ParseError::Unterminated("file name")),
            (b"\x00\x01file\x00octet", ParseError::Unterminated("mode")),
            (b"\x00\x01file\x00binary\x00", ParseError::UnknownMode),
            (
                b"\x00\x01f\x00octet\x00blksize\x00",
                ParseError::OptionWithoutValue("blksize".into()),
            ),
            (b"\x00\x04\x00\x01\x00", ParseError::trailing("ACK", 1)),
        ];
        for (wire, want) in cases {
            assert_eq!(parse(wire), Err(want), "{wire:?}");
        }
        assert_eq!(
            parse(b"\x00\x01f\x00octet\x00\xff\x00x\x00"),
            Err(ParseError::OptionNotUtf8)
        );
        assert_eq!(
            parse(b"\x00\x05\x00\x00a\x00b"),
            Err(ParseError::trailing("ERROR", 1))
        );
    }

    #[test]
    fn no_prefix_of_a_valid_packet_panics() {
        let wire = b"\x00\x01dir/file\x00octet\x00blksize\x00512\x00tsize\x000\x00";
        for end in 0..=wire.len() {
            let _ = parse(&wire[..end]);
        }
    }
}
