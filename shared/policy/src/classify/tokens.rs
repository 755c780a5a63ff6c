//! The words of a normalized reply, kept as slices of it (on the stack up
//! to 32 words), with the clause breaks between them.

/// A word of the normalized body.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Token<'a> {
    /// The word.
    pub(super) text: &'a str,
    /// Clause punctuation (. , ! ? ; :) separates it from the previous word.
    pub(super) break_before: bool,
}

/// Words kept on the stack up to this many.
const INLINE_TOKENS: usize = 32;

/// The words of a normalized body: maximal runs of letters and digits, with
/// apostrophes inside a word kept ("don't").
#[derive(Debug)]
pub(super) struct Tokens<'a> {
    inline: [Token<'a>; INLINE_TOKENS],
    len: usize,
    /// All words, once there are more than `INLINE_TOKENS`.
    spill: Vec<Token<'a>>,
}

impl<'a> Tokens<'a> {
    /// The words of `text`.
    pub(super) fn of(text: &'a str) -> Self {
        let mut tokens = Self {
            inline: [Token::default(); INLINE_TOKENS],
            len: 0,
            spill: Vec::new(),
        };
        let mut start: Option<usize> = None;
        let mut pending_break = false;
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c.is_alphanumeric() {
                start.get_or_insert(i);
                continue;
            }
            if c == '\''
                && start.is_some()
                && chars
                    .peek()
                    .is_some_and(|&(_, next)| next.is_alphanumeric())
            {
                continue;
            }
            if let Some(s) = start.take() {
                tokens.push(Token {
                    text: text.get(s..i).unwrap_or_default(),
                    break_before: pending_break,
                });
                pending_break = false;
            }
            if matches!(c, '.' | ',' | '!' | '?' | ';' | ':') && !tokens.is_empty() {
                pending_break = true;
            }
        }
        if let Some(s) = start {
            tokens.push(Token {
                text: text.get(s..).unwrap_or_default(),
                break_before: pending_break,
            });
        }
        tokens
    }

    fn is_empty(&self) -> bool {
        self.len == 0 && self.spill.is_empty()
    }

    fn push(&mut self, token: Token<'a>) {
        if !self.spill.is_empty() {
            self.spill.push(token);
        } else if let Some(slot) = self.inline.get_mut(self.len) {
            *slot = token;
            self.len += 1;
        } else {
            self.spill.extend_from_slice(&self.inline);
            self.spill.push(token);
        }
    }

    /// The words, in order.
    pub(super) fn as_slice(&self) -> &[Token<'a>] {
        if self.spill.is_empty() {
            self.inline.get(..self.len).unwrap_or_default()
        } else {
            &self.spill
        }
    }
}

/// The text of word `i`, or "" past the end.
pub(super) fn text<'a>(t: &[Token<'a>], i: usize) -> &'a str {
    t.get(i).map_or("", |token| token.text)
}

/// Whether words `i` and `i + 1` are in the same clause (and both exist).
pub(super) fn joined(t: &[Token<'_>], i: usize) -> bool {
    t.get(i).is_some() && t.get(i + 1).is_some_and(|next| !next.break_before)
}
