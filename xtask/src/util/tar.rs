//! Reading a tar stream (as `docker image save`, `docker export` and buildx's `type=oci` output
//! write it) one regular file at a time, without unpacking it to disk.

use std::io::Read;

use anyhow::{bail, Context, Result};

/// Calls `visit` with the name and contents of each regular file whose name and size `keep`
/// accepts; the other files stream past unread. Names lose a leading `./`.
pub fn for_each_file(
    mut reader: impl Read,
    keep: impl Fn(&str, u64) -> bool,
    mut visit: impl FnMut(&str, Vec<u8>),
) -> Result<()> {
    let mut header = [0u8; 512];
    loop {
        if !read_block(&mut reader, &mut header)? || header.iter().all(|b| *b == 0) {
            return Ok(());
        }
        let field =
            |a: usize, b: usize| String::from_utf8_lossy(&header[a..b]).trim_end_matches('\0').trim().to_string();
        let prefix = field(345, 500);
        let name = if prefix.is_empty() { field(0, 100) } else { format!("{prefix}/{}", field(0, 100)) };
        let name = name.trim_start_matches("./");
        let size = u64::from_str_radix(&field(124, 136), 8).context("a tar header with a bad size")?;
        let padded = size.div_ceil(512) * 512;
        let regular = header[156] == b'0' || header[156] == 0;
        if regular && keep(name, size) {
            let mut body = vec![0u8; padded as usize];
            reader.read_exact(&mut body).context("a truncated tar stream")?;
            body.truncate(size as usize);
            visit(name, body);
        } else {
            let skipped = std::io::copy(&mut (&mut reader).take(padded), &mut std::io::sink())?;
            if skipped < padded {
                bail!("a truncated tar stream");
            }
        }
    }
}

/// Fills one 512-byte block; false at a clean end of stream.
fn read_block(reader: &mut impl Read, block: &mut [u8; 512]) -> Result<bool> {
    let mut filled = 0;
    while filled < 512 {
        let n = reader.read(&mut block[filled..])?;
        if n == 0 {
            return if filled == 0 { Ok(false) } else { bail!("a truncated tar header") };
        }
        filled += n;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_read_and_skipped_by_size() {
        let dir = std::env::temp_dir().join(format!("xtask-tar-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/small"), "hello").unwrap();
        std::fs::write(dir.join("big"), vec![b'x'; 2000]).unwrap();
        let tar =
            std::process::Command::new("tar").args(["-C", dir.to_str().unwrap(), "-cf", "-", "."]).output().unwrap();
        let mut seen = Vec::new();
        for_each_file(tar.stdout.as_slice(), |_, size| size < 1000, |name, body| seen.push((name.to_string(), body)))
            .unwrap();
        assert_eq!(seen, [("sub/small".to_string(), b"hello".to_vec())]);
        assert!(for_each_file(&tar.stdout[..700], |_, _| true, |_, _| {}).is_err(), "a cut stream is an error");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
