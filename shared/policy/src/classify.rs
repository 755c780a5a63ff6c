//! Inbound reply classification: opt-out, help, opt-in, confirm, reschedule
//! or other, each with a tier (exact, clear, doubtful) and the id of the rule
//! that decided it.
//!
//! # Sources
//! - 47 CFR 64.1200(a)(10) (FCC 24-24, in force 2025-04-11): a reply of
//!   *stop, quit, end, revoke, opt out, cancel* or *unsubscribe* is a per se
//!   revocation, and any other wording a reasonable person reads as one must
//!   be honoured too. Rule ids `keyword.fcc.*`.
//! - Carrier and CTIA keyword lists: STOPALL, OPTOUT, ARRET, REMOVE, TD
//!   (`keyword.carrier.*`); HELP, INFO (`keyword.ctia.*`); START, UNSTOP, YES
//!   after an opt-out (`keyword.carrier.*`, `keyword.ctia.yes`).
//! - Spanish: ALTO, PARAR, BASTA, CANCELAR (`keyword.es.*`), AYUDA, SI.
//! - compliance-rules §3: do better than Twilio (exact single word only) and
//!   AWS (any body that begins with a keyword, so "Stop by at 3pm?" opts out).
//!
//! # Tiers
//! - `Exact`: the body, once punctuation, emoji, case, width and spacing are
//!   ignored, is only keywords ("STOP", " stop. ", "ＳＴＯＰ", "Opt-Out",
//!   "STOP STOP").
//! - `Clear`: a keyword with politeness or filler ("STOP PLEASE", "Stop. Thank
//!   you", "can you stop?"), a keyword about the texts ("stop texting me"), or
//!   free text a reasonable person reads that way ("don't text me anymore",
//!   "take me off your list", "wrong number").
//! - `Doubtful`: an opt-out keyword inside a sentence that may be about
//!   something else ("I want to cancel my appointment"), and a few phrases
//!   that may be revocations ("not interested"). Callers suppress **and**
//!   queue a human review with the rule id as the reason.
//!
//! # Precedence and design choices
//! - Opt-out wins: if any reading is an opt-out, at any tier, the result is an
//!   opt-out; help, opt-in and the reply grammar are consulted only after.
//! - A keyword is a whole word: "stopwatch", "endless", "unstoppable",
//!   "quitting time" are not keywords.
//! - A keyword right after a negation in the same clause is not a revocation
//!   ("don't stop reminding me", "please don't stop", "never stop") and gives
//!   `Other` with rule `other.negated_keyword`. Only the two words before the
//!   keyword are looked at, so "I don't want to stop ..." stays `Doubtful`:
//!   when unsure, the classifier errs towards suppression.
//! - STOP used as a verb of another sense ("stop by", "stop in", "stop at",
//!   "bus stop") and END as in "the end of the day" give `Other` with rule
//!   `other.keyword_other_sense`, not an opt-out. "stop at once" is still one.
//! - "can you stop?" is `Clear`: a request to stop, in reply to a text, reads
//!   as a revocation ("can", "could", "will", "would", "you" are fillers).
//! - "wrong number" is a `Clear` revocation: the person is not the patient.
//! - YES is an opt-in only when the sender has this number opted out
//!   ([`ReplyContext::opted_out`]). Otherwise it is a free-text confirmation
//!   (`Confirm`, `Clear`) when the last template asked for one (it has confirm
//!   codes) and `Other` when not. YES and SI are reserved words: a template
//!   may never use them as codes, because after an opt-out they mean opt-in.
//!   START, UNSTOP and SUBSCRIBE are opt-ins whatever the state; restoring
//!   only what was revoked is the consent ledger's job.
//! - A free-text confirmation ("confirm", "confirmed", "I'll be there") or
//!   reschedule request ("can we reschedule") is recognised only when the
//!   context has a reply grammar: without one there is no prompt to answer.
//!   A message that asks to reschedule and also confirms is a reschedule.
//!
//! # Speed
//! No regular expressions: one allocation for the normalized text, the words
//! kept as slices of it on the stack (a `Vec` only past 32 words), and
//! keyword tables as `match` on `&str`.

use serde::{Deserialize, Serialize};
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use crate::PolicyError;

/// Version of the classifier's rules and word lists.
pub const CLASSIFIER_VERSION: &str = "2026-11-25";

/// What a reply asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// Revoke consent (suppress at once).
    OptOut,
    /// Ask for help (send the HELP text).
    Help,
    /// Opt back in (a recorded consent event).
    OptIn,
    /// Confirm the appointment the last template asked about.
    Confirm,
    /// Ask to reschedule that appointment.
    Reschedule,
    /// Anything else.
    Other,
}

/// How sure the classifier is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// The body is only the keyword or code.
    Exact,
    /// The intent is plain to a reasonable reader.
    Clear,
    /// The intent may be this; a human should review.
    Doubtful,
}

/// The reply codes of the template version last sent, e.g. confirm
/// `["C", "1"]`, reschedule `["R", "2"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyGrammar {
    /// Codes that confirm.
    pub confirm: Vec<String>,
    /// Codes that ask to reschedule.
    pub reschedule: Vec<String>,
}

impl ReplyGrammar {
    /// Checks the codes: each must be one word of letters or digits, none may
    /// be a reserved keyword (every opt-out, help and opt-in word, including
    /// CANCEL, STOP, END, QUIT and YES; compliance-rules §3), and no code may
    /// appear twice.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let invalid = |reason: String| PolicyError::RuleTable {
            table: "reply_grammar",
            reason,
        };
        let codes = self.confirm.iter().chain(self.reschedule.iter());
        for (index, code) in codes.clone().enumerate() {
            let normalized = normalize(code);
            if normalized.is_empty() {
                return Err(invalid("a code is empty".to_owned()));
            }
            let tokens = Tokens::of(&normalized);
            let word = match tokens.as_slice() {
                [only] if only.text == normalized => only.text,
                _ => {
                    return Err(invalid(format!(
                        "code {normalized:?} is not one word of letters or digits"
                    )))
                }
            };
            if is_reserved(word) {
                return Err(invalid(format!(
                    "code {normalized:?} is a reserved keyword"
                )));
            }
            if codes
                .clone()
                .skip(index + 1)
                .any(|other| normalize(other) == normalized)
            {
                return Err(invalid(format!("code {normalized:?} appears twice")));
            }
        }
        Ok(())
    }
}

/// What the classifier knows about the conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyContext {
    /// The reply grammar of the template version last sent, if it had one.
    pub grammar: Option<ReplyGrammar>,
    /// The sender currently has this number opted out, so YES means opt-in.
    pub opted_out: bool,
}

/// The classifier's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    /// What the reply asks for.
    pub intent: Intent,
    /// How sure the classifier is.
    pub tier: Tier,
    /// Stable id of the rule that decided, e.g. `keyword.fcc.stop`,
    /// `freetext.revocation.stop_texting`, `grammar.confirm`.
    pub rule: String,
    /// The keyword, code or phrase matched, normalized (never the whole body
    /// unless the body is only that).
    pub matched: Option<String>,
}

/// Folds a body for word matching: compatibility decomposition (NFKD, so
/// full-width, circled and mathematical letters become plain ones, as NFKC
/// would), combining marks dropped (so accents fold: "arrêt" = "arret",
/// "más" = "mas"), lower case, curly quotes and apostrophes to `'` and `"`,
/// Unicode dashes to `-`, zero-width characters dropped, runs of whitespace
/// to one space, trimmed. Punctuation and emoji are kept.
pub fn normalize(body: &str) -> String {
    let mut out = Normalizer {
        text: String::with_capacity(body.len()),
        space: false,
    };
    if body.is_ascii() {
        // ASCII is already in every normal form; skip the decomposition.
        for b in body.bytes() {
            out.push(char::from(b.to_ascii_lowercase()));
        }
    } else {
        for c in body.nfkd() {
            if is_combining_mark(c) {
                continue;
            }
            for lower in c.to_lowercase() {
                out.push(lower);
            }
        }
    }
    out.text
}

/// Builds the normalized text one character at a time.
struct Normalizer {
    text: String,
    /// A whitespace run is pending: emit one space before the next character.
    space: bool,
}

impl Normalizer {
    fn push(&mut self, c: char) {
        let c = match c {
            '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' | '\u{02BC}' | '`' => {
                '\''
            }
            '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2033}' => '"',
            '\u{2010}'..='\u{2015}' | '\u{2212}' => '-',
            // Soft hyphen, zero-width space/joiners, direction marks, word
            // joiner, BOM: invisible, and used to dodge keyword filters.
            '\u{00AD}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}' => return,
            other => other,
        };
        if c.is_whitespace() || c.is_control() {
            self.space = !self.text.is_empty();
            return;
        }
        if self.space {
            self.text.push(' ');
            self.space = false;
        }
        self.text.push(c);
    }
}

/// Classifies an inbound reply. Never fails: anything unrecognised is
/// `Other`.
pub fn classify(body: &str, ctx: &ReplyContext) -> Classification {
    let normalized = normalize(body);
    let tokens = Tokens::of(&normalized);
    classify_tokens(tokens.as_slice(), ctx).into_classification(tokens.as_slice())
}

// ---------------------------------------------------------------------------
// Words

/// A word of the normalized body.
#[derive(Debug, Clone, Copy, Default)]
struct Token<'a> {
    text: &'a str,
    /// Clause punctuation (. , ! ? ; :) separates it from the previous word.
    break_before: bool,
}

/// Words kept on the stack up to this many.
const INLINE_TOKENS: usize = 32;

/// The words of a normalized body: maximal runs of letters and digits, with
/// apostrophes inside a word kept ("don't").
#[derive(Debug)]
struct Tokens<'a> {
    inline: [Token<'a>; INLINE_TOKENS],
    len: usize,
    /// All words, once there are more than `INLINE_TOKENS`.
    spill: Vec<Token<'a>>,
}

impl<'a> Tokens<'a> {
    fn of(text: &'a str) -> Self {
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

    fn as_slice(&self) -> &[Token<'a>] {
        if self.spill.is_empty() {
            self.inline.get(..self.len).unwrap_or_default()
        } else {
            &self.spill
        }
    }
}

/// The text of word `i`, or "" past the end.
fn text<'a>(t: &[Token<'a>], i: usize) -> &'a str {
    t.get(i).map_or("", |token| token.text)
}

/// Whether words `i` and `i + 1` are in the same clause (and both exist).
fn joined(t: &[Token<'_>], i: usize) -> bool {
    t.get(i).is_some() && t.get(i + 1).is_some_and(|next| !next.break_before)
}

// ---------------------------------------------------------------------------
// Word tables

/// A single-word opt-out keyword: its rule id and canonical form.
fn opt_out_word(w: &str) -> Option<(&'static str, &'static str)> {
    Some(match w {
        // 47 CFR 64.1200(a)(10): per se revocations.
        "stop" => ("keyword.fcc.stop", "stop"),
        "quit" => ("keyword.fcc.quit", "quit"),
        "end" => ("keyword.fcc.end", "end"),
        "revoke" => ("keyword.fcc.revoke", "revoke"),
        "cancel" => ("keyword.fcc.cancel", "cancel"),
        "unsubscribe" => ("keyword.fcc.unsubscribe", "unsubscribe"),
        // Carrier (CTIA / aggregator) opt-out lists.
        "stopall" => ("keyword.carrier.stopall", "stopall"),
        "optout" => ("keyword.carrier.optout", "optout"),
        "arret" => ("keyword.carrier.arret", "arret"),
        "remove" => ("keyword.carrier.remove", "remove"),
        "td" => ("keyword.carrier.td", "td"),
        // Common Spanish (compliance-rules §3).
        "alto" => ("keyword.es.alto", "alto"),
        "parar" => ("keyword.es.parar", "parar"),
        "basta" => ("keyword.es.basta", "basta"),
        "cancelar" => ("keyword.es.cancelar", "cancelar"),
        _ => return None,
    })
}

/// An opt-out keyword starting at word `i`: rule id, canonical form, words.
fn opt_out_at(t: &[Token<'_>], i: usize) -> Option<(&'static str, &'static str, usize)> {
    // "opt out" and "opt-out" (the hyphen separates words) are the FCC's
    // "opt out".
    if text(t, i) == "opt" && text(t, i + 1) == "out" {
        return Some(("keyword.fcc.opt_out", "opt out", 2));
    }
    opt_out_word(text(t, i)).map(|(rule, canonical)| (rule, canonical, 1))
}

/// A HELP keyword (CTIA): its rule id.
fn help_word(w: &str) -> Option<&'static str> {
    match w {
        "help" => Some("keyword.ctia.help"),
        "info" => Some("keyword.ctia.info"),
        "ayuda" => Some("keyword.es.ayuda"),
        _ => None,
    }
}

/// An opt-in keyword: its rule id. YES and SI count only after an opt-out.
fn opt_in_word(w: &str, opted_out: bool) -> Option<&'static str> {
    match w {
        "start" => Some("keyword.carrier.start"),
        "unstop" => Some("keyword.carrier.unstop"),
        "subscribe" => Some("keyword.carrier.subscribe"),
        "yes" if opted_out => Some("keyword.ctia.yes"),
        "si" if opted_out => Some("keyword.es.si"),
        _ => None,
    }
}

/// Words a template may never use as a reply code (compliance-rules §3).
fn is_reserved(w: &str) -> bool {
    opt_out_word(w).is_some()
        || help_word(w).is_some()
        || opt_in_word(w, true).is_some()
        || matches!(w, "opt" | "out")
}

/// Politeness and filler around a keyword that do not change its meaning.
fn is_filler(w: &str) -> bool {
    matches!(
        w,
        "please"
            | "pls"
            | "plz"
            | "plse"
            | "pleaseee"
            | "thanks"
            | "thank"
            | "thankyou"
            | "thx"
            | "tx"
            | "ty"
            | "tks"
            | "you"
            | "u"
            | "now"
            | "me"
            | "us"
            | "asap"
            | "immediately"
            | "already"
            | "ok"
            | "okay"
            | "k"
            | "again"
            | "right"
            | "just"
            | "all"
            | "this"
            | "the"
            | "these"
            | "them"
            | "those"
            | "from"
            | "my"
            | "your"
            | "number"
            | "list"
            | "kindly"
            | "can"
            | "could"
            | "will"
            | "would"
            | "sir"
            | "maam"
            | "hi"
            | "hello"
            | "hey"
            | "help"
            | "forever"
            | "permanently"
            | "once"
            | "por"
            | "favor"
            | "gracias"
            | "ahora"
            | "ya"
            | "todo"
            | "todos"
    )
}

/// Words about the messages themselves ("stop *texting* me").
fn is_texting_word(w: &str) -> bool {
    matches!(
        w,
        "text"
            | "texts"
            | "texting"
            | "txt"
            | "txts"
            | "txting"
            | "message"
            | "messages"
            | "messaging"
            | "msg"
            | "msgs"
            | "sms"
            | "reminder"
            | "reminders"
            | "reminding"
            | "notification"
            | "notifications"
            | "alert"
            | "alerts"
            | "contacting"
            | "calling"
            | "sending"
            | "send"
            | "spam"
            | "subscription"
            | "subscriptions"
            | "mensaje"
            | "mensajes"
            | "texto"
            | "textos"
    )
}

/// Verbs that, negated, ask not to be contacted ("don't *text* me").
fn is_contact_verb(w: &str) -> bool {
    matches!(
        w,
        "text"
            | "txt"
            | "message"
            | "msg"
            | "sms"
            | "contact"
            | "send"
            | "call"
            | "email"
            | "bother"
            | "reach"
            | "texting"
            | "messaging"
            | "contacting"
    )
}

/// Negations that cancel a following keyword ("don't stop").
fn is_negator(w: &str) -> bool {
    w.ends_with("n't")
        || matches!(
            w,
            "dont"
                | "not"
                | "never"
                | "cannot"
                | "cant"
                | "wont"
                | "didnt"
                | "doesnt"
                | "shouldnt"
                | "wouldnt"
                | "isnt"
                | "arent"
        )
}

// ---------------------------------------------------------------------------
// Classification

/// What matched, as a static canonical form or a span of words.
#[derive(Debug, Clone, Copy)]
enum Matched {
    None,
    Static(&'static str),
    /// Words `start..end` of the body, joined by single spaces.
    Span(usize, usize),
}

/// The internal result, converted to a [`Classification`] at the end so
/// that only the final answer allocates.
#[derive(Debug, Clone, Copy)]
struct Found {
    intent: Intent,
    tier: Tier,
    rule: &'static str,
    matched: Matched,
}

impl Found {
    fn new(intent: Intent, tier: Tier, rule: &'static str, matched: Matched) -> Self {
        Self {
            intent,
            tier,
            rule,
            matched,
        }
    }

    fn into_classification(self, t: &[Token<'_>]) -> Classification {
        let matched = match self.matched {
            Matched::None => None,
            Matched::Static(s) => Some(s.to_owned()),
            Matched::Span(start, end) => {
                let mut joined = String::new();
                for token in t.iter().take(end).skip(start) {
                    if !joined.is_empty() {
                        joined.push(' ');
                    }
                    joined.push_str(token.text);
                }
                Some(joined)
            }
        };
        Classification {
            intent: self.intent,
            tier: self.tier,
            rule: self.rule.to_owned(),
            matched,
        }
    }
}

fn classify_tokens(t: &[Token<'_>], ctx: &ReplyContext) -> Found {
    if t.is_empty() {
        return Found::new(Intent::Other, Tier::Clear, "other.no_words", Matched::None);
    }
    let note = match opt_out(t) {
        OptOutScan::Found(found) => return found,
        OptOutScan::Nothing(note) => note,
    };
    if let Some(found) = keyword_intent(t, Intent::Help, help_word) {
        return found;
    }
    if let Some(found) = keyword_intent(t, Intent::OptIn, |w| opt_in_word(w, ctx.opted_out)) {
        return found;
    }
    if let Some(grammar) = &ctx.grammar {
        if let Some(found) = grammar_code(t, grammar) {
            return found;
        }
        if let Some(found) = grammar_free_text(t, grammar) {
            return found;
        }
    }
    note.unwrap_or(Found::new(
        Intent::Other,
        Tier::Clear,
        "other.no_match",
        Matched::None,
    ))
}

/// The outcome of the opt-out pass: an opt-out, or nothing with an optional
/// note for the `Other` answer (a negated or other-sense keyword).
enum OptOutScan {
    Found(Found),
    Nothing(Option<Found>),
}

fn opt_out(t: &[Token<'_>]) -> OptOutScan {
    // Exact: nothing but keywords.
    let mut first = None;
    let mut i = 0;
    let mut only_keywords = true;
    while i < t.len() {
        match opt_out_at(t, i) {
            Some((rule, canonical, len)) => {
                first.get_or_insert((rule, canonical));
                i += len;
            }
            None => {
                only_keywords = false;
                break;
            }
        }
    }
    if only_keywords {
        if let Some((rule, canonical)) = first {
            return OptOutScan::Found(Found::new(
                Intent::OptOut,
                Tier::Exact,
                rule,
                Matched::Static(canonical),
            ));
        }
    }

    // Keywords inside a longer message.
    let mut doubtful = None;
    let mut note = None;
    let mut i = 0;
    while i < t.len() {
        let Some((rule, canonical, len)) = opt_out_at(t, i) else {
            i += 1;
            continue;
        };
        if let Some(negator) = negated_by(t, i) {
            note.get_or_insert(Found::new(
                Intent::Other,
                Tier::Clear,
                "other.negated_keyword",
                Matched::Span(negator, i + len),
            ));
        } else if other_sense(t, i, len, canonical) {
            note.get_or_insert(Found::new(
                Intent::Other,
                Tier::Clear,
                "other.keyword_other_sense",
                Matched::Span(i, i + len + 1),
            ));
        } else if let Some(end) = texting_word_after(t, i + len) {
            return OptOutScan::Found(Found::new(
                Intent::OptOut,
                Tier::Clear,
                "freetext.revocation.stop_texting",
                Matched::Span(i, end + 1),
            ));
        } else if only_filler_besides(t, i, len) {
            return OptOutScan::Found(Found::new(
                Intent::OptOut,
                Tier::Clear,
                rule,
                Matched::Static(canonical),
            ));
        } else {
            doubtful.get_or_insert(Found::new(
                Intent::OptOut,
                Tier::Doubtful,
                "freetext.doubtful.keyword_in_sentence",
                Matched::Static(canonical),
            ));
        }
        i += len;
    }

    // Free-text revocations without a keyword.
    for i in 0..t.len() {
        match revocation_phrase_at(t, i) {
            Some(found) if found.tier == Tier::Clear => return OptOutScan::Found(found),
            Some(found) => {
                doubtful.get_or_insert(found);
            }
            None => {}
        }
    }
    match doubtful {
        Some(found) => OptOutScan::Found(found),
        None => OptOutScan::Nothing(note),
    }
}

/// The negation among the two words before word `i`, in the same clause, if
/// there is one ("don't stop", "please don't ever stop"; not "never mind,
/// stop" or "never mind stop").
fn negated_by(t: &[Token<'_>], i: usize) -> Option<usize> {
    for back in 1..=2 {
        let j = i.checked_sub(back)?;
        // A clause break between word j and word i ends the look-back.
        if t.get(j + 1).is_some_and(|next| next.break_before) {
            return None;
        }
        let w = text(t, j);
        if is_negator(w) && !(w == "never" && text(t, j + 1) == "mind") {
            return Some(j);
        }
    }
    None
}

/// Whether the keyword at `i..i + len` is used in another sense: STOP as in
/// "stop by / in / at / over", "bus stop"; END as in "the end of", "end up".
fn other_sense(t: &[Token<'_>], i: usize, len: usize, canonical: &str) -> bool {
    let next = if joined(t, i + len - 1) {
        text(t, i + len)
    } else {
        ""
    };
    let prev = match i.checked_sub(1) {
        Some(p) if joined(t, p) => text(t, p),
        _ => "",
    };
    match canonical {
        "stop" => {
            let after = text(t, i + len + 1);
            matches!(
                next,
                "by" | "in" | "over" | "sign" | "signs" | "light" | "lights"
            ) || (next == "at" && after != "once")
                || matches!(
                    prev,
                    "bus"
                        | "pit"
                        | "next"
                        | "last"
                        | "first"
                        | "full"
                        | "one"
                        | "truck"
                        | "train"
                        | "rest"
                        | "non"
                )
        }
        "end" => {
            matches!(next, "of" | "up" | "at" | "date" | "time" | "result")
                || matches!(
                    prev,
                    "dead" | "deep" | "back" | "front" | "rear" | "high" | "low"
                )
        }
        _ => false,
    }
}

/// The index of a texting word among the three words after `from`, in the
/// same clause ("stop texting", "stop sending me these texts").
fn texting_word_after(t: &[Token<'_>], from: usize) -> Option<usize> {
    (from..from + 4)
        .take_while(|&j| j < t.len() && !t.get(j).is_some_and(|tok| tok.break_before))
        .find(|&j| is_texting_word(text(t, j)))
}

/// Whether every word outside `i..i + len` is filler, a texting word or
/// another keyword.
fn only_filler_besides(t: &[Token<'_>], i: usize, len: usize) -> bool {
    t.iter().enumerate().all(|(j, token)| {
        (i..i + len).contains(&j)
            || is_filler(token.text)
            // "stop at once", "never mind, stop".
            || (token.text == "at" && text(t, j + 1) == "once")
            || (token.text == "never" && text(t, j + 1) == "mind")
            || (token.text == "mind" && j.checked_sub(1).is_some_and(|p| text(t, p) == "never"))
            || is_texting_word(token.text)
            || opt_out_word(token.text).is_some()
            || matches!(token.text, "opt" | "out")
    })
}

/// A free-text revocation starting at word `i`.
fn revocation_phrase_at(t: &[Token<'_>], i: usize) -> Option<Found> {
    let w = text(t, i);
    let w1 = text(t, i + 1);
    let w2 = text(t, i + 2);
    let clear = |rule, end: usize| {
        Some(Found::new(
            Intent::OptOut,
            Tier::Clear,
            rule,
            Matched::Span(i, end),
        ))
    };
    let doubtful = |rule, end: usize| {
        Some(Found::new(
            Intent::OptOut,
            Tier::Doubtful,
            rule,
            Matched::Span(i, end),
        ))
    };
    match w {
        "don't" | "dont" => do_not(t, i, i + 1),
        "do" if w1 == "not" => do_not(t, i, i + 2),
        "never" if is_contact_verb(w1) => clear("freetext.revocation.do_not_text", i + 2),
        "no" => match w1 {
            // "no more", alone or about the texts.
            "more" if w2.is_empty() || is_texting_word(w2) || is_filler(w2) => {
                clear("freetext.revocation.no_more_texts", i + 2)
            }
            // Spanish "no más" ("no more").
            "mas" if w2.is_empty() || is_texting_word(w2) || is_filler(w2) => {
                clear("freetext.revocation.es_no_mas", i + 2)
            }
            "mas" => doubtful("freetext.doubtful.es_no_mas", i + 2),
            // "no me envíen / manden / escriban (más mensajes)".
            "me" if matches!(
                w2,
                "envien"
                    | "envies"
                    | "manden"
                    | "mandes"
                    | "escriban"
                    | "escribas"
                    | "contacten"
                    | "contactes"
                    | "molesten"
                    | "molestes"
            ) =>
            {
                clear("freetext.revocation.es_no_me_envien", i + 3)
            }
            "quiero" if matches!(w2, "mas" | "mensajes" | "textos" | "recibir" | "recibirlos") => {
                clear("freetext.revocation.es_no_quiero", i + 3)
            }
            _ => None,
        },
        "ya" if w1 == "no" => {
            if matches!(
                w2,
                "quiero" | "me" | "mas" | "mensajes" | "envien" | "manden" | "recibir"
            ) {
                clear("freetext.revocation.es_ya_no", i + 3)
            } else if w2.is_empty() {
                doubtful("freetext.doubtful.es_ya_no", i + 2)
            } else {
                None
            }
        }
        "dejen" | "deja" | "dejar" | "dejes" | "dejan"
            if w1 == "de"
                && matches!(
                    w2,
                    "enviar"
                        | "enviarme"
                        | "mandar"
                        | "mandarme"
                        | "escribir"
                        | "escribirme"
                        | "molestar"
                        | "molestarme"
                        | "contactar"
                        | "contactarme"
                ) =>
        {
            clear("freetext.revocation.es_dejen_de", i + 3)
        }
        "take" if matches!(w1, "me" | "my" | "us" | "this" | "our") => (i + 2..i + 5)
            .find(|&j| text(t, j) == "off")
            .and_then(|j| clear("freetext.revocation.take_me_off", j + 1)),
        "leave" if matches!(w1, "me" | "us") && w2 == "alone" => {
            clear("freetext.revocation.leave_me_alone", i + 3)
        }
        "wrong"
            if matches!(
                w1,
                "number" | "num" | "person" | "phone" | "no" | "guy" | "girl" | "contact"
            ) =>
        {
            clear("freetext.revocation.wrong_number", i + 2)
        }
        "numero" if w1 == "equivocado" => clear("freetext.revocation.wrong_number", i + 2),
        "not" if w1 == "my" && matches!(w2, "number" | "phone") => {
            clear("freetext.revocation.wrong_number", i + 3)
        }
        "not" if w1 == "interested" => doubtful("freetext.doubtful.not_interested", i + 2),
        "opt" if matches!(w1, "me" | "us") && w2 == "out" => {
            clear("freetext.revocation.opt_me_out", i + 3)
        }
        "delete" | "lose" | "erase"
            if matches!(w1, "my" | "this" | "our")
                && matches!(w2, "number" | "info" | "contact" | "phone") =>
        {
            clear("freetext.revocation.delete_my_number", i + 3)
        }
        _ => None,
    }
}

/// After a negation at `neg` whose verb is at `verb`: "don't text me",
/// "do not contact me", "I don't want these messages".
fn do_not(t: &[Token<'_>], neg: usize, verb: usize) -> Option<Found> {
    let v = text(t, verb);
    if is_contact_verb(v) {
        return Some(Found::new(
            Intent::OptOut,
            Tier::Clear,
            "freetext.revocation.do_not_text",
            Matched::Span(neg, verb + 1),
        ));
    }
    if matches!(v, "want" | "wanna" | "need") {
        return texting_word_after(t, verb + 1).map(|end| {
            Found::new(
                Intent::OptOut,
                Tier::Clear,
                "freetext.revocation.do_not_want_texts",
                Matched::Span(neg, end + 1),
            )
        });
    }
    None
}

/// HELP or opt-in: only keywords is `Exact`, a keyword with filler `Clear`.
fn keyword_intent(
    t: &[Token<'_>],
    intent: Intent,
    rule_of: impl Fn(&str) -> Option<&'static str>,
) -> Option<Found> {
    let mut first: Option<(&'static str, usize)> = None;
    let mut all_keywords = true;
    let mut all_filler = true;
    for (i, token) in t.iter().enumerate() {
        match rule_of(token.text) {
            Some(rule) => {
                first.get_or_insert((rule, i));
            }
            None => {
                all_keywords = false;
                all_filler &= is_filler(token.text) || is_texting_word(token.text);
            }
        }
    }
    let (rule, at) = first?;
    let matched = Matched::Span(at, at + 1);
    if all_keywords {
        Some(Found::new(intent, Tier::Exact, rule, matched))
    } else if all_filler {
        Some(Found::new(intent, Tier::Clear, rule, matched))
    } else {
        None
    }
}

/// Whether word `w` equals `code` once both are normalized.
fn code_matches(w: &str, code: &str) -> bool {
    let code = code.trim();
    if code.is_ascii() {
        w.eq_ignore_ascii_case(code)
    } else {
        normalize(code) == w
    }
}

/// A reply code of the grammar: only codes is `Exact`, a code with filler
/// `Clear`.
fn grammar_code(t: &[Token<'_>], grammar: &ReplyGrammar) -> Option<Found> {
    let lists = [
        (Intent::Confirm, "grammar.confirm", &grammar.confirm),
        (
            Intent::Reschedule,
            "grammar.reschedule",
            &grammar.reschedule,
        ),
    ];
    for (intent, rule, codes) in lists {
        let is_code = |w: &str| codes.iter().any(|code| code_matches(w, code));
        let Some(at) = t.iter().position(|token| is_code(token.text)) else {
            continue;
        };
        let matched = Matched::Span(at, at + 1);
        if t.iter().all(|token| is_code(token.text)) {
            return Some(Found::new(intent, Tier::Exact, rule, matched));
        }
        if t.iter()
            .enumerate()
            .all(|(j, token)| j == at || is_filler(token.text))
        {
            return Some(Found::new(intent, Tier::Clear, rule, matched));
        }
    }
    None
}

/// Free-text answers to the last prompt: a reschedule request, or a
/// confirmation (when not negated).
fn grammar_free_text(t: &[Token<'_>], grammar: &ReplyGrammar) -> Option<Found> {
    if !grammar.reschedule.is_empty() {
        for i in 0..t.len() {
            let w = text(t, i);
            let w1 = text(t, i + 1);
            let w2 = text(t, i + 2);
            let end = match w {
                "reschedule" | "rescheduling" | "reprogramar" | "reagendar" => Some(i + 1),
                "re" if w1 == "schedule" => Some(i + 2),
                "another" | "different" | "other" if matches!(w1, "time" | "day" | "date") => {
                    Some(i + 2)
                }
                "change" | "move"
                    if matches!(w1, "appointment" | "appt" | "time" | "date")
                        || (matches!(w1, "my" | "the")
                            && matches!(w2, "appointment" | "appt" | "time" | "date")) =>
                {
                    Some(i + 2 + usize::from(matches!(w1, "my" | "the")))
                }
                _ => None,
            };
            if let Some(end) = end {
                return Some(Found::new(
                    Intent::Reschedule,
                    Tier::Clear,
                    "freetext.reschedule",
                    Matched::Span(i, end),
                ));
            }
        }
    }
    if grammar.confirm.is_empty() || t.iter().any(|token| is_negator(token.text)) {
        return None;
    }
    for i in 0..t.len() {
        let w = text(t, i);
        let w1 = text(t, i + 1);
        let end = match w {
            "confirm" | "confirmed" | "confirming" | "confirmo" | "confirmado" | "confirmada" => {
                Some(i + 1)
            }
            "be" if w1 == "there" => Some(i + 2),
            "see" if w1 == "you" => Some(i + 2),
            _ => None,
        };
        if let Some(end) = end {
            return Some(Found::new(
                Intent::Confirm,
                Tier::Clear,
                "freetext.confirm",
                Matched::Span(i, end),
            ));
        }
    }
    // A bare affirmative ("yes", "ok", "sure", "sí") with only filler.
    let affirmative = |w: &str| {
        matches!(
            w,
            "yes" | "yep" | "yeah" | "yup" | "si" | "sure" | "ok" | "okay" | "k"
        )
    };
    let at = t.iter().position(|token| affirmative(token.text))?;
    t.iter()
        .all(|token| affirmative(token.text) || is_filler(token.text))
        .then_some(Found::new(
            Intent::Confirm,
            Tier::Clear,
            "freetext.confirm.affirmative",
            Matched::Span(at, at + 1),
        ))
}
