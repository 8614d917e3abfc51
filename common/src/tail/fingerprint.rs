//! File identity: device, inode and a checksum of the first bytes, hashed into 64 bits.
//!
//! A file found with no history gets salt 0, so its fingerprint depends only on what it is.
//! A new file in an inode this process followed before (a truncation, or a file deleted and
//! recreated in a reused inode) gets a random salt: its first bytes may well be the same as the
//! old content's (`2024-01-01T`), and equal fingerprints would mean equal document ids.
//! The salt is kept in the checkpoint.
//!
//! The hash is FNV-1a over fixed-width little-endian fields followed by a final avalanche
//! (splitmix64), so it is the same on every build and platform: it ends up in document ids
//! and checkpoint files and must not change between versions.

/// What identifies one file's content: its fingerprint (fixed when the file first had data)
/// and a check of its first bytes (which grows with the file up to `FINGERPRINT_BYTES`, to
/// recognise the file at restart and notice when its content was replaced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    /// How many first bytes the check covers.
    pub(crate) len: u32,
    /// CRC-32 of those bytes.
    pub(crate) crc: u32,
    pub(crate) salt: u64,
    pub(crate) fingerprint: u64,
}

impl Head {
    pub(crate) fn of(dev: u64, inode: u64, head: &[u8], salt: u64) -> Self {
        Self {
            len: u32::try_from(head.len()).unwrap_or(u32::MAX),
            crc: crc32fast::hash(head),
            salt,
            fingerprint: fingerprint(dev, inode, head, salt),
        }
    }
}

/// The fingerprint of a file with this device, inode, first `head` bytes and salt.
pub(crate) fn fingerprint(dev: u64, inode: u64, head: &[u8], salt: u64) -> u64 {
    let crc = crc32fast::hash(head);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let len = u32::try_from(head.len()).unwrap_or(u32::MAX);
    for byte in dev
        .to_le_bytes()
        .into_iter()
        .chain(inode.to_le_bytes())
        .chain(len.to_le_bytes())
        .chain(crc.to_le_bytes())
        .chain(salt.to_le_bytes())
    {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // splitmix64 finaliser: spread the bits so that ids differ visibly.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::fingerprint;

    #[test]
    fn stable_and_sensitive() {
        // Pinned: document ids and checkpoints depend on this value never changing.
        assert_eq!(
            fingerprint(1, 2, b"hello", 0),
            fingerprint(1, 2, b"hello", 0)
        );
        assert_eq!(fingerprint(1, 2, b"hello", 0), 0xee65_abc4_a1bf_b9cf);
        assert_ne!(
            fingerprint(1, 2, b"hello", 0),
            fingerprint(1, 3, b"hello", 0)
        );
        assert_ne!(
            fingerprint(1, 2, b"hello", 0),
            fingerprint(2, 2, b"hello", 0)
        );
        assert_ne!(
            fingerprint(1, 2, b"hello", 0),
            fingerprint(1, 2, b"hellp", 0)
        );
        assert_ne!(
            fingerprint(1, 2, b"hell", 0),
            fingerprint(1, 2, b"hello", 0)
        );
        assert_ne!(
            fingerprint(1, 2, b"hello", 0),
            fingerprint(1, 2, b"hello", 1)
        );
    }
}
