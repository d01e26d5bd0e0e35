//! Streaming detection: byte patterns found across chunk boundaries without holding the body.
//!
//! Each chunk is searched on its own; the seam between two chunks is searched in a small
//! window made of the last `overlap` bytes of the previous data and the first `overlap`
//! bytes of the new chunk, where `overlap` is the longest pattern (plus the longest capture
//! for trigger markers) minus one. Memory is bounded by `2 * overlap`, whatever the body size.
//!
//! With two patterns or more, one Aho-Corasick pass over a piece says where the first
//! occurrence of any of them starts; the per-pattern searches only run from there, so a
//! piece that holds none of them (most bodies) costs one pass, not one per pattern.

use aho_corasick::{AhoCorasick, MatchKind};
use memchr::memmem::Finder;

/// The 68-byte EICAR anti-virus test file.
pub const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// Longest token captured after a marker such as `ICAP-MOCK-FAULT:`.
pub(crate) const CAPTURE_MAX: usize = 64;

/// One pattern the scanner looks for.
#[derive(Debug)]
struct Pattern {
    finder: Finder<'static>,
    /// Capture the token after the pattern (trigger markers).
    capture: bool,
}

/// A compiled set of patterns, shared by the connections of a server.
#[derive(Debug)]
pub(crate) struct PatternSet {
    patterns: Vec<Pattern>,
    overlap: usize,
    /// All the patterns in one automaton (leftmost-first: its match starts where the
    /// earliest occurrence of any pattern does); `None` for fewer than two patterns, or if
    /// the automaton could not be built (then each pattern is searched on its own).
    any: Option<AhoCorasick>,
}

impl PatternSet {
    /// Compiles `plain` patterns and `capture` markers (empty patterns are ignored).
    pub(crate) fn new(plain: &[Vec<u8>], capture: &[Vec<u8>]) -> Self {
        let mut patterns = Vec::new();
        let mut overlap = 0;
        for (list, cap) in [(plain, false), (capture, true)] {
            for p in list.iter().filter(|p| !p.is_empty()) {
                let need = p.len() - 1 + if cap { CAPTURE_MAX } else { 0 };
                overlap = overlap.max(need);
                patterns.push(Pattern {
                    finder: Finder::new(p).into_owned(),
                    capture: cap,
                });
            }
        }
        let any = (patterns.len() > 1)
            .then(|| {
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostFirst)
                    .build(patterns.iter().map(|p| p.finder.needle()))
                    .ok()
            })
            .flatten();
        PatternSet {
            patterns,
            overlap,
            any,
        }
    }

    /// Index of `pattern` in the set, if it is a plain pattern of it.
    pub(crate) fn index_of(&self, pattern: &[u8]) -> Option<usize> {
        self.patterns
            .iter()
            .position(|p| !p.capture && p.finder.needle() == pattern)
    }

    /// Index of the capture marker `pattern`.
    pub(crate) fn capture_index_of(&self, pattern: &[u8]) -> Option<usize> {
        self.patterns
            .iter()
            .position(|p| p.capture && p.finder.needle() == pattern)
    }

    pub(crate) fn len(&self) -> usize {
        self.patterns.len()
    }
}

/// What was found for one pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    /// Offset of the first match in the body.
    pub(crate) at: u64,
    /// For capture markers: the token after the marker.
    pub(crate) captured: Vec<u8>,
}

/// The per-message scanning state.
#[derive(Debug)]
pub(crate) struct Scanner {
    /// Per pattern of the set; empty until the first match (no allocation for a body that
    /// holds none).
    found: Vec<Option<Found>>,
    /// The last `overlap` bytes seen.
    tail: Vec<u8>,
    /// Body offset of `tail[0]`.
    tail_at: u64,
    /// Bytes fed so far.
    len: u64,
    remaining: usize,
    /// Body offset of a capture marker whose token was cut by the end of the data so far.
    pending: Option<u64>,
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'=' | b'-' | b'+' | b',')
}

/// The token at the start of `rest`, if it is known to be complete.
fn token(rest: &[u8], at_end: bool) -> Option<&[u8]> {
    let n = rest
        .iter()
        .take(CAPTURE_MAX)
        .position(|&b| !is_token_byte(b));
    match n {
        Some(n) => Some(&rest[..n]),
        None if rest.len() >= CAPTURE_MAX => Some(&rest[..CAPTURE_MAX]),
        None if at_end => Some(rest),
        None => None,
    }
}

impl Scanner {
    pub(crate) fn new(set: &PatternSet) -> Self {
        Scanner {
            found: Vec::new(),
            tail: Vec::new(),
            tail_at: 0,
            len: 0,
            remaining: set.len(),
            pending: None,
        }
    }

    /// The first match of pattern `i`, if any so far.
    pub(crate) fn found(&self, i: usize) -> Option<&Found> {
        self.found.get(i).and_then(Option::as_ref)
    }

    fn search(&mut self, set: &PatternSet, hay: &[u8], hay_at: u64, at_end: bool) {
        // No occurrence of any pattern starts before the automaton's first match.
        let from = match &set.any {
            Some(any) => match any.find(hay) {
                Some(m) => m.start(),
                None => return,
            },
            None => 0,
        };
        let (hay, hay_at) = (&hay[from..], hay_at + from as u64);
        for (i, p) in set.patterns.iter().enumerate() {
            if self.found(i).is_some() {
                continue;
            }
            let Some(pos) = p.finder.find(hay) else {
                continue;
            };
            let captured = if p.capture {
                // A token cut by the end of this window is seen whole in the next one (the
                // seam keeps `CAPTURE_MAX` bytes after any marker).
                if let Some(t) = token(&hay[pos + p.finder.needle().len()..], at_end) {
                    t.to_vec()
                } else {
                    let at = hay_at + pos as u64;
                    self.pending = Some(self.pending.map_or(at, |p| p.min(at)));
                    continue;
                }
            } else {
                Vec::new()
            };
            if self.found.is_empty() {
                self.found.resize(set.len(), None);
            }
            self.found[i] = Some(Found {
                at: hay_at + pos as u64,
                captured,
            });
            self.remaining -= 1;
        }
    }

    /// Scans the next piece of the body.
    pub(crate) fn feed(&mut self, set: &PatternSet, chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        self.pending = None;
        if self.remaining > 0 {
            if set.overlap > 0 && !self.tail.is_empty() {
                let head = &chunk[..chunk.len().min(set.overlap)];
                let mut seam = Vec::with_capacity(self.tail.len() + head.len());
                seam.extend_from_slice(&self.tail);
                seam.extend_from_slice(head);
                self.search(set, &seam, self.tail_at, false);
            }
            self.search(set, chunk, self.len, false);
        }
        self.len += chunk.len() as u64;
        if set.overlap > 0 {
            // Keep `overlap` bytes, or more while a marker's token is still incomplete.
            let keep_from =
                (self.len.saturating_sub(set.overlap as u64)).min(self.pending.unwrap_or(u64::MAX));
            let keep = (self.len - keep_from) as usize;
            if self.tail.capacity() == 0 {
                self.tail.reserve_exact(set.overlap * 2);
            }
            if chunk.len() >= keep {
                self.tail.clear();
                self.tail.extend_from_slice(&chunk[chunk.len() - keep..]);
            } else {
                self.tail.extend_from_slice(chunk);
                let excess = self.tail.len().saturating_sub(keep);
                self.tail.drain(..excess);
            }
            self.tail_at = self.len - self.tail.len() as u64;
        }
    }

    /// The body ended: a marker whose token ran to the end of the body is complete now.
    /// Without such a marker, the tail holds nothing new: every occurrence inside it was
    /// inside the last piece or its seam, both searched already.
    pub(crate) fn finish(&mut self, set: &PatternSet) {
        if self.pending.is_some() && self.remaining > 0 && !self.tail.is_empty() {
            let tail = std::mem::take(&mut self.tail);
            self.search(set, &tail, self.tail_at, true);
            self.tail = tail;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_in_pieces(body: &[u8], piece: usize, set: &PatternSet) -> Scanner {
        let mut s = Scanner::new(set);
        for c in body.chunks(piece.max(1)) {
            s.feed(set, c);
        }
        s.finish(set);
        s
    }

    #[test]
    fn eicar_found_at_any_split() {
        let set = PatternSet::new(&[EICAR.to_vec()], &[]);
        let mut body = vec![b'a'; 1000];
        body.extend_from_slice(EICAR);
        body.extend_from_slice(&[b'z'; 333]);
        for piece in [1, 2, 7, 67, 68, 69, 500, 1068, 4096] {
            let s = scan_in_pieces(&body, piece, &set);
            assert_eq!(s.found(0).map(|f| f.at), Some(1000), "piece {piece}");
        }
    }

    #[test]
    fn absent_and_partial_patterns_are_not_found() {
        let set = PatternSet::new(&[EICAR.to_vec()], &[]);
        let mut body = EICAR[..67].to_vec();
        body.extend_from_slice(b"Y");
        for piece in [1, 30, 68] {
            assert!(scan_in_pieces(&body, piece, &set).found(0).is_none());
        }
    }

    /// The first occurrence of `p` in the whole body, and for a capture marker the token
    /// after it: what the streaming scanner must find, whatever the pieces.
    fn whole_body(body: &[u8], p: &[u8], capture: bool) -> Option<Found> {
        let at = memchr::memmem::find(body, p)?;
        let captured = if capture {
            token(&body[at + p.len()..], true)
                .expect("complete at the end")
                .to_vec()
        } else {
            Vec::new()
        };
        Some(Found {
            at: at as u64,
            captured,
        })
    }

    proptest::proptest! {
        /// Many patterns over a small alphabet (so that they overlap, share prefixes and
        /// repeat), fed in pieces of any size: each pattern's first match and token are the
        /// whole body's, with the one-pass prefilter as without it.
        #[test]
        fn pieces_find_what_the_whole_body_holds(
            plain in proptest::collection::vec(proptest::collection::vec(proptest::sample::select(b"abIX".to_vec()), 1..6), 0..5),
            capture in proptest::collection::vec(proptest::collection::vec(proptest::sample::select(b"abI:".to_vec()), 1..4), 0..3),
            body in proptest::collection::vec(proptest::sample::select(b"abIX: z".to_vec()), 0..400),
            piece in 1usize..90,
        ) {
            let set = PatternSet::new(&plain, &capture);
            let s = scan_in_pieces(&body, piece, &set);
            for (i, p) in set.patterns.iter().enumerate() {
                let want = whole_body(&body, p.finder.needle(), p.capture);
                proptest::prop_assert_eq!(s.found(i), want.as_ref(), "pattern {:?}", String::from_utf8_lossy(p.finder.needle()));
            }
        }
    }

    #[test]
    fn a_one_byte_pattern_alone_is_found() {
        // Its seam is empty (`overlap` 0): before stop 26 that skipped the search itself.
        let set = PatternSet::new(&[b"z".to_vec()], &[]);
        let s = scan_in_pieces(b"abcz", 2, &set);
        assert_eq!(s.found(0).map(|f| f.at), Some(3));
    }

    #[test]
    fn a_set_of_patterns_is_searched_in_one_pass_first() {
        let two = PatternSet::new(&[EICAR.to_vec()], &[b"ICAP-MOCK-FAULT:".to_vec()]);
        assert!(two.any.is_some());
        assert!(PatternSet::new(&[EICAR.to_vec()], &[]).any.is_none());
    }

    #[test]
    fn capture_marker_token() {
        let set = PatternSet::new(&[], &[b"ICAP-MOCK-FAULT:".to_vec()]);
        let body = b"xx ICAP-MOCK-FAULT:never_answer rest";
        for piece in [1, 3, 10, 100] {
            let s = scan_in_pieces(body, piece, &set);
            let f = s.found(0).expect("marker");
            assert_eq!(
                (f.at, &f.captured[..]),
                (3, &b"never_answer"[..]),
                "{piece}"
            );
        }
        // A token that runs to the end of the body is complete at finish.
        let s = scan_in_pieces(b"ICAP-MOCK-FAULT:reset", 4, &set);
        assert_eq!(s.found(0).unwrap().captured, b"reset");
    }
}
