//! The checksum every journal record and snapshot carries inside its redb value.
//!
//! redb checksums its pages, but it verifies them only when it repairs a file after an
//! unclean shutdown: a bit that rots in a cleanly closed file, or a page some other tool
//! scribbled on, is read back as if it were data. Replaying such a record would rebuild
//! wrong wallets, so each value carries its own CRC-32 (IEEE polynomial, computed by
//! crc32fast) and every read checks it before the bytes leave the store.
//!
//! A stored value is `payload ++ crc32_le(kind ++ seq_le ++ payload)`. The seq is inside the
//! checksum so that a record moved to another key (a damaged key, a page mixed up with
//! another) fails as well, and the kind byte keeps a record from passing as a snapshot.

/// Bytes the checksum adds to every stored value.
pub(super) const CHECKSUM_BYTES: usize = 4;

/// What a stored value is; part of the checksummed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A journal record.
    Record,
    /// A journal's snapshot.
    Snapshot,
}

impl Kind {
    /// The byte fed to the checksum; distinct per kind.
    fn tag(self) -> u8 {
        match self {
            Kind::Record => b'R',
            Kind::Snapshot => b'S',
        }
    }
}

/// Why a stored value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Mismatch {
    /// The value cannot even hold a checksum.
    TooShort {
        /// Length of the stored value in bytes.
        len_bytes: usize,
    },
    /// The checksum does not match the bytes.
    Differs {
        /// The checksum found in the file.
        stored: u32,
        /// The checksum of the bytes found in the file.
        computed: u32,
    },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::TooShort { len_bytes } => write!(
                f,
                "stored value is {len_bytes} bytes, too short to hold its {CHECKSUM_BYTES}-byte checksum"
            ),
            Mismatch::Differs { stored, computed } => write!(
                f,
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
        }
    }
}

fn crc(kind: Kind, seq: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[kind.tag()]);
    hasher.update(&seq.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Replaces `out` with the stored form of `payload` at `seq`.
pub(super) fn seal_into(kind: Kind, seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    seal_append(kind, seq, payload, out);
}

/// Like [`seal_into`], appending to what `out` already holds.
pub(super) fn seal_append(kind: Kind, seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(payload.len() + CHECKSUM_BYTES);
    out.extend_from_slice(payload);
    out.extend_from_slice(&crc(kind, seq, payload).to_le_bytes());
}

/// The payload of a stored value, only if its checksum matches `kind` and `seq`.
pub(super) fn unseal(kind: Kind, seq: u64, stored: &[u8]) -> Result<&[u8], Mismatch> {
    let split = stored
        .len()
        .checked_sub(CHECKSUM_BYTES)
        .ok_or(Mismatch::TooShort {
            len_bytes: stored.len(),
        })?;
    let (payload, tail) = stored.split_at(split);
    let mut stored_crc = [0_u8; CHECKSUM_BYTES];
    stored_crc.copy_from_slice(tail);
    let stored_crc = u32::from_le_bytes(stored_crc);
    let computed = crc(kind, seq, payload);
    if stored_crc == computed {
        Ok(payload)
    } else {
        Err(Mismatch::Differs {
            stored: stored_crc,
            computed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(kind: Kind, seq: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0xAA; 3];
        seal_into(kind, seq, payload, &mut out);
        out
    }

    #[test]
    fn roundtrips_any_payload_including_empty() {
        for payload in [&b""[..], b"x", &[0, 0, 0, 0], &[0xFF; 300]] {
            let stored = sealed(Kind::Record, 7, payload);
            assert_eq!(stored.len(), payload.len() + CHECKSUM_BYTES);
            assert_eq!(unseal(Kind::Record, 7, &stored), Ok(payload));
        }
    }

    #[test]
    fn every_single_bit_flip_is_refused() {
        let stored = sealed(Kind::Record, 42, b"grant coupon 42 to account r17");
        for bit in 0..stored.len() * 8 {
            let mut damaged = stored.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(
                unseal(Kind::Record, 42, &damaged).is_err(),
                "flip of bit {bit} went unnoticed"
            );
        }
    }

    #[test]
    fn wrong_seq_wrong_kind_and_short_values_are_refused() {
        let stored = sealed(Kind::Record, 42, b"payload");
        assert!(matches!(
            unseal(Kind::Record, 43, &stored),
            Err(Mismatch::Differs { .. })
        ));
        assert!(matches!(
            unseal(Kind::Snapshot, 42, &stored),
            Err(Mismatch::Differs { .. })
        ));
        assert_eq!(
            unseal(Kind::Record, 1, &[1, 2, 3]),
            Err(Mismatch::TooShort { len_bytes: 3 })
        );
        let message = Mismatch::Differs {
            stored: 1,
            computed: 2,
        }
        .to_string();
        assert!(message.contains("checksum mismatch"), "{message}");
    }
}
