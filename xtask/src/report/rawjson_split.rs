//! The rawjson stream cut into its JSON objects, on bytes: the text buildx writes between them is
//! kept (its tail, up to a cap) for error messages, and no input can make the cut fail.

use super::SolveStatus;

/// At most this many bytes of the text outside the JSON objects are kept: the last ones, as buildx
/// ends with its error and the Dockerfile excerpt.
pub(crate) const STRAY_CAP: usize = 16 * 1024;

/// An object still open after this many bytes is not one of BuildKit's (a log chunk is at most a
/// few MiB): it is kept as text, so memory stays bounded whatever buildx writes.
const OBJECT_CAP: usize = 64 << 20;

/// Splits a byte stream into top-level JSON objects, whatever the line breaks, skipping any text
/// between them (a warning line, a message from the docker CLI). It works on bytes throughout, so
/// no input (text that is not UTF-8, a character split across two chunks) can make it fail.
#[derive(Default)]
pub(crate) struct Splitter {
    buf: Vec<u8>,
    in_object: bool,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// Text outside JSON objects, for error messages: up to twice [`STRAY_CAP`] before it is cut.
    stray: Vec<u8>,
    stray_total: usize,
}

impl Splitter {
    pub(crate) fn feed(&mut self, mut chunk: &[u8]) -> Vec<SolveStatus> {
        let mut out = Vec::new();
        while !chunk.is_empty() {
            if !self.in_object {
                let Some(open) = chunk.iter().position(|b| *b == b'{') else {
                    self.keep_stray(chunk);
                    break;
                };
                self.keep_stray(&chunk[..open]);
                chunk = &chunk[open..];
                self.in_object = true;
                self.buf.clear();
            }
            let (used, closed) = self.scan_object(chunk);
            self.buf.extend_from_slice(&chunk[..used]);
            chunk = &chunk[used..];
            if closed {
                if let Ok(status) = serde_json::from_slice::<SolveStatus>(&self.buf) {
                    out.push(status);
                }
                self.in_object = false;
                self.buf.clear();
            } else if self.buf.len() > OBJECT_CAP {
                let text = std::mem::take(&mut self.buf);
                self.keep_stray(&text);
                (self.in_object, self.depth, self.in_string, self.escaped) = (false, 0, false, false);
            }
        }
        out
    }

    /// Follows the open object through `chunk`: how many bytes belong to it, and whether its
    /// closing brace is among them.
    fn scan_object(&mut self, chunk: &[u8]) -> (usize, bool) {
        for (i, &b) in chunk.iter().enumerate() {
            if self.in_string {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' => self.depth += 1,
                b'}' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        return (i + 1, true);
                    }
                }
                _ => {}
            }
        }
        (chunk.len(), false)
    }

    fn keep_stray(&mut self, bytes: &[u8]) {
        self.stray_total += bytes.len();
        let bytes = &bytes[bytes.len().saturating_sub(STRAY_CAP)..];
        self.stray.extend_from_slice(bytes);
        // Cut at twice the cap, so each byte is moved at most once on average.
        if self.stray.len() > 2 * STRAY_CAP {
            self.stray.drain(..self.stray.len() - STRAY_CAP);
        }
    }

    /// The last [`STRAY_CAP`] bytes of text outside the objects, as text (bytes that are not UTF-8
    /// shown as U+FFFD). A character cut in two by the cap is left out whole.
    pub(crate) fn stray(&self) -> String {
        let kept = &self.stray[self.stray.len().saturating_sub(STRAY_CAP)..];
        let cut = self.stray_total > kept.len();
        let start = if cut { kept.iter().take(3).take_while(|b| *b & 0xC0 == 0x80).count() } else { 0 };
        String::from_utf8_lossy(&kept[start..]).into_owned()
    }

    /// When the text outside the objects was longer than [`STRAY_CAP`], a line saying so.
    pub(crate) fn stray_note(&self) -> Option<String> {
        (self.stray_total > STRAY_CAP).then(|| {
            format!(
                "buildx wrote {} bytes of text outside its progress stream; the report keeps the last {STRAY_CAP}",
                self.stray_total
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64: a small, well-known generator, seeded, so each run tries the same streams and a
    /// failure repeats.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const OBJECT: &[u8] = br#"{"vertexes": [{"digest": "d", "name": "[backend 1/2] RUN \"caf\u00e9\" { }"}]}"#;

    /// Pieces a stream is made of: the bytes that steer the splitter, characters of every UTF-8
    /// length, bytes that are never UTF-8, a lone lead byte, and whole objects.
    fn piece(rng: &mut Rng) -> Vec<u8> {
        let pieces: [&[u8]; 12] = [
            b"{",
            b"}",
            b"\"",
            b"\\",
            b"\n",
            "é".as_bytes(),
            "€".as_bytes(),
            "😀".as_bytes(),
            b"\xff",
            b"\xc3",
            b"x",
            OBJECT,
        ];
        match rng.below(16) {
            0..=11 => pieces[rng.below(12)].to_vec(),
            _ => vec![rng.next() as u8],
        }
    }

    /// Everything the splitter makes of a stream fed in the given chunk lengths (cycled).
    fn run(stream: &[u8], lengths: &[usize]) -> (Vec<String>, String, Option<String>) {
        let mut s = Splitter::default();
        let mut names = Vec::new();
        let (mut at, mut i) = (0, 0);
        while at < stream.len() {
            let end = (at + lengths[i % lengths.len()]).min(stream.len());
            names.extend(s.feed(&stream[at..end]).into_iter().flat_map(|st| st.vertexes).map(|v| v.name));
            (at, i) = (end, i + 1);
        }
        let stray = s.stray();
        assert!(stray.len() <= 3 * STRAY_CAP, "each kept byte is at most one replacement character");
        (names, stray, s.stray_note())
    }

    #[test]
    fn random_byte_streams_never_fail_and_the_chunking_changes_nothing() {
        let mut rng = Rng(21);
        for _ in 0..300 {
            let len = rng.below(4000);
            let mut stream = Vec::new();
            while stream.len() < len {
                stream.extend(piece(&mut rng));
            }
            let whole = run(&stream, &[stream.len().max(1)]);
            let lengths: Vec<usize> = (0..8).map(|_| 1 + rng.below(700)).collect();
            assert_eq!(run(&stream, &lengths), whole, "{:?}", String::from_utf8_lossy(&stream));
            assert_eq!(run(&stream, &[1]), whole);
        }
    }

    #[test]
    fn multibyte_characters_split_at_every_buffer_boundary_read_the_same() {
        let mut stream = "warning: é€😀 before\n".as_bytes().to_vec();
        stream.extend(OBJECT);
        stream.extend("\nERROR: caf\u{e9} 😀 after\n".as_bytes());
        stream.extend(OBJECT);
        let whole = run(&stream, &[stream.len()]);
        assert_eq!(whole.0.len(), 2);
        assert_eq!(whole.1, "warning: é€😀 before\n\nERROR: café 😀 after\n");
        for cut in 1..stream.len() {
            assert_eq!(run(&stream, &[cut, stream.len()]), whole, "cut after byte {cut}");
        }
    }

    #[test]
    fn text_over_the_cap_keeps_its_tail_whole_with_a_note() {
        // The cap falls on every byte of a four-byte character in turn.
        for extra in 0..8 {
            let text = format!("{}{}ERROR: the end", "x".repeat(extra), "😀".repeat(STRAY_CAP / 4 + 1));
            let (_, stray, note) = run(text.as_bytes(), &[4096]);
            assert!(!stray.contains('\u{FFFD}') && stray.ends_with("😀ERROR: the end"), "{extra}");
            assert!(stray.len() <= STRAY_CAP && stray.len() > STRAY_CAP - 4, "{extra}: {}", stray.len());
            let expected = format!("buildx wrote {} bytes of text outside its progress stream", text.len());
            assert!(note.is_some_and(|n| n.starts_with(&expected)), "{extra}");
        }
    }

    #[test]
    fn twenty_thousand_accented_characters_before_the_stream_are_read_as_text() {
        let mut stream = "é".repeat(20_000).into_bytes();
        stream.extend(OBJECT);
        let (names, stray, note) = run(&stream, &[8192]);
        assert_eq!(names, ["[backend 1/2] RUN \"café\" { }"]);
        assert_eq!(stray, "é".repeat(STRAY_CAP / 2));
        assert!(note.is_some());
    }

    #[test]
    fn megabytes_without_a_newline_or_a_closing_brace_stay_bounded() {
        let mut rng = Rng(7);
        let text: Vec<u8> = (0..8 << 20).map(|_| b"ab \xe9\xff}"[rng.below(6)]).collect();
        let mut s = Splitter::default();
        for chunk in text.chunks(64 * 1024) {
            assert!(s.feed(chunk).is_empty());
        }
        assert_eq!(s.feed(OBJECT).len(), 1, "an object after the text is still read");
        assert!(s.stray.len() <= 2 * STRAY_CAP);
        // An object that never closes is given up as text once it passes the object cap.
        let mut s = Splitter::default();
        s.feed(b"{\"logs\": \"");
        let open = vec![b'a'; 1 << 20];
        for _ in 0..=OBJECT_CAP >> 20 {
            s.feed(&open);
        }
        assert!(!s.in_object && s.buf.capacity() <= OBJECT_CAP + (2 << 20), "{}", s.buf.capacity());
        assert_eq!(s.feed(OBJECT).len(), 1);
        let given_up = "{\"logs\": \"".len() + OBJECT_CAP + (1 << 20);
        assert!(s.stray_note().is_some_and(|n| n.contains(&format!("wrote {given_up} bytes"))));
    }
}
