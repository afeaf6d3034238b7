//! The compat flags a server announces after the version (`compat.c setup_protocol`): which
//! optional behaviours this session has. rtsync never sets `CF_INC_RECURSE`.

/// Incremental recursion (never used by rtsync).
pub const CF_INC_RECURSE: u32 = 0x01;
/// Symlink times can be set.
pub const CF_SYMLINK_TIMES: u32 = 0x02;
/// Symlink targets go through iconv.
pub const CF_SYMLINK_ICONV: u32 = 0x04;
/// The file list ends with an I/O-error flag the receiver trusts.
pub const CF_SAFE_FLIST: u32 = 0x08;
/// No xattr hard-link optimisation.
pub const CF_AVOID_XATTR_OPTIM: u32 = 0x10;
/// The checksum seed goes first into md5 block sums.
pub const CF_CHKSUM_SEED_FIX: u32 = 0x20;
/// `--inplace` with a partial directory.
pub const CF_INPLACE_PARTIAL_DIR: u32 = 0x40;
/// Varint entry flags, and the checksum and compression lists are negotiated.
pub const CF_VARINT_FLIST_FLAGS: u32 = 0x80;
/// Id lists carry a name for id 0.
pub const CF_ID0_NAMES: u32 = 0x100;

/// The compat flags a server grants for the capability letters a client sent after `-e`
/// (`.LsfxCIvu`-style), leaving out incremental recursion and symlink iconv, which rtsync
/// does not do.
#[must_use]
pub fn for_capabilities(letters: &str) -> u32 {
    let mut flags = 0;
    for c in letters.chars() {
        flags |= match c {
            'L' => CF_SYMLINK_TIMES,
            'f' => CF_SAFE_FLIST,
            'x' => CF_AVOID_XATTR_OPTIM,
            'C' => CF_CHKSUM_SEED_FIX,
            'I' => CF_INPLACE_PARTIAL_DIR,
            'v' => CF_VARINT_FLIST_FLAGS,
            'u' => CF_ID0_NAMES,
            _ => 0,
        };
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stock_client_gets_what_upstream_grants_less_incremental_recursion() {
        // Debian 3.5.0 answers `e.iLsfxCIvu` with 0x1ff; without `i` and `s` that is 0x1fa.
        assert_eq!(for_capabilities(".iLsfxCIvu"), 0x1ff & !0x01 & !0x04);
        assert_eq!(for_capabilities(""), 0);
    }
}
