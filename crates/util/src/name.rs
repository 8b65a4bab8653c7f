//! The rules for names and identifiers that end up in paths, URLs, shell commands and logs
//! (blob keys, stage names, outlet ids, kernel modules) and for the fixed identifiers of disk
//! images (UUIDs, 8-hex-digit ids). Each owner declares its [`NameRule`]; the checking and the
//! wording of the error live here.

/// A value that breaks its rule: `"a b" is not a valid outlet id (…)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not {expected}")]
pub struct Invalid {
    pub value: String,
    pub expected: String,
}

/// Which names are allowed: letters and digits, plus `punct`, at most `max` bytes.
#[derive(Debug, Clone, Copy)]
pub struct NameRule {
    /// What the name is, for messages: `outlet id`.
    pub what: &'static str,
    pub max: usize,
    /// Allowed besides ASCII letters and digits.
    pub punct: &'static str,
    /// The first character must be a letter or digit.
    pub alnum_first: bool,
}

impl NameRule {
    pub fn check(&self, name: &str) -> Result<(), Invalid> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || self.punct.contains(c);
        let ok = !name.is_empty()
            && name.len() <= self.max
            && name.chars().all(allowed)
            && (!self.alnum_first || name.starts_with(|c: char| c.is_ascii_alphanumeric()));
        if ok {
            return Ok(());
        }
        let punct: Vec<String> = self.punct.chars().map(String::from).collect();
        let mut expected = format!(
            "a valid {} (1-{} of A-Z a-z 0-9 {}",
            self.what,
            self.max,
            punct.join(" ")
        );
        if self.alnum_first {
            expected.push_str(", starting with a letter or digit");
        }
        expected.push(')');
        Err(Invalid {
            value: name.to_string(),
            expected,
        })
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in hex digits.
pub fn check_uuid(s: &str) -> Result<(), Invalid> {
    let groups: Vec<&str> = s.split('-').collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    if lens == [8, 4, 4, 4, 12] && groups.iter().all(|g| is_hex(g)) {
        Ok(())
    } else {
        Err(Invalid {
            value: s.to_string(),
            expected: "a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)".into(),
        })
    }
}

/// An 8-hex-digit identifier (`"50490001"`, `0x` allowed) such as a FAT volume id.
pub fn parse_hex_u32(s: &str) -> Result<u32, Invalid> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    if digits.len() == 8
        && is_hex(digits)
        && let Ok(v) = u32::from_str_radix(digits, 16)
    {
        return Ok(v);
    }
    Err(Invalid {
        value: s.to_string(),
        expected: "8 hex digits".into(),
    })
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: NameRule = NameRule {
        what: "outlet id",
        max: 64,
        punct: "._-",
        alnum_first: true,
    };

    #[test]
    fn names_follow_their_rule_and_say_it() {
        assert!(ID.check("node-1.a_b").is_ok());
        for bad in ["", "a b", "-a", &"x".repeat(65)] {
            assert!(ID.check(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            ID.check("a b").unwrap_err().to_string(),
            "\"a b\" is not a valid outlet id (1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit)"
        );
    }

    #[test]
    fn identifiers() {
        assert!(check_uuid("5049464f-756e-4472-b900-000000000002").is_ok());
        assert!(check_uuid("5049464f-756e-4472-b900-00000000000g").is_err());
        assert_eq!(parse_hex_u32("0x5049ABCD").unwrap(), 0x5049_abcd);
        assert_eq!(
            parse_hex_u32("5049").unwrap_err().to_string(),
            "\"5049\" is not 8 hex digits"
        );
        assert!(parse_hex_u32("+0494630").is_err());
    }
}
