//! Revocations in plain words, without a keyword: withdrawal of consent,
//! "don't text me", "leave me alone", "wrong number", exasperation, in
//! the listed languages.

use super::*;

/// A free-text revocation starting at word `i`.
pub(super) fn revocation_phrase_at(t: &[Token<'_>], i: usize) -> Option<Found> {
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
            // "I no longer consent", "no longer want these texts", "she no
            // longer has this number".
            "longer" => {
                if is_consent_word(w2) || matches!(w2, "agree" | "authorize") {
                    clear("freetext.revocation.no_longer_consent", i + 3)
                } else if matches!(w2, "has" | "have" | "owns" | "uses" | "use")
                    && (i + 3..i + 6).any(|j| matches!(text(t, j), "number" | "phone"))
                {
                    clear("freetext.revocation.wrong_number", i + 3)
                } else if matches!(w2, "want" | "wish" | "need" | "like" | "wanna") {
                    match texting_word_after(t, i + 3) {
                        Some(end) => clear("freetext.revocation.no_longer_want_texts", end + 1),
                        None => doubtful("freetext.doubtful.no_longer_want", i + 3),
                    }
                } else if w2 == "interested" {
                    doubtful("freetext.doubtful.not_interested", i + 3)
                } else {
                    None
                }
            }
            // "no thanks" with nothing else: may decline the texts or only
            // this appointment.
            "thanks" | "thank" | "thx" | "gracias" | "merci"
                if t.iter().skip(i + 2).all(|token| is_filler(token.text)) =>
            {
                doubtful("freetext.doubtful.no_thanks", i + 2)
            }
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
        // "I withdraw my consent", "I'm revoking permission", "retiro mi
        // consentimiento".
        "withdraw" | "withdrawing" | "withdrawn" | "withdrew" | "retract" | "retracting"
        | "rescind" | "rescinding" | "revoking" | "retiro" | "revoco" | "retire" | "retirer"
            if consent_word_after(t, i + 1).is_some() =>
        {
            let end = consent_word_after(t, i + 1).unwrap_or(i);
            clear("freetext.revocation.withdraw_consent", end + 1)
        }
        // "Enough!", "enough already", "that's enough", "enough with the
        // texts": exasperation with nothing else said.
        "enough"
            if t.iter().enumerate().all(|(j, token)| {
                j == i
                    || is_filler(token.text)
                    || is_texting_word(token.text)
                    || matches!(
                        token.text,
                        "that's" | "thats" | "is" | "it" | "with" | "of" | "ok" | "seriously"
                    )
            }) =>
        {
            clear("freetext.revocation.enough", i + 1)
        }
        // "sick of these texts", "tired of your messages", "fed up with the
        // reminders", "done with these messages".
        "sick" | "tired" | "fed" | "done"
            if matches!(
                (w, w1),
                ("sick" | "tired", "of") | ("fed", "up") | ("done", "with")
            ) && joined(t, i) =>
        {
            texting_word_after(t, i + 2)
                .and_then(|end| clear("freetext.revocation.exasperation", end + 1))
        }
        // "I never signed up", "I didn't agree to this".
        "never" | "didn't" | "didnt" | "did"
            if matches!(
                w1,
                "signed" | "sign" | "agreed" | "agree" | "consented" | "asked"
            ) || (w == "did" && w1 == "not" && matches!(w2, "sign" | "agree" | "consent")) =>
        {
            doubtful("freetext.doubtful.never_agreed", i + 2)
        }
        // "Why do you keep texting me?": an objection, maybe a revocation.
        "keep" if is_texting_word(w1) => doubtful("freetext.doubtful.keep_texting", i + 2),
        // "This person doesn't live here": the number is someone else's.
        "live" | "lives"
            if w1 == "here"
                && (1..=2)
                    .any(|back| i.checked_sub(back).is_some_and(|p| is_negator(text(t, p)))) =>
        {
            clear("freetext.revocation.wrong_number", i + 2)
        }
        // Spanish "déjenme en paz", French "laissez-moi tranquille".
        "dejenme" | "dejame" | "dejeme" if w1 == "en" && w2 == "paz" => {
            clear("freetext.revocation.leave_me_alone", i + 3)
        }
        "laissez" | "laisse" | "laissez-moi" if w1 == "moi" && w2 == "tranquille" => {
            clear("freetext.revocation.leave_me_alone", i + 3)
        }
        // French and Spanish "plus de SMS" / "no más mensajes" (the latter
        // above), German "keine SMS mehr", Portuguese "não quero mais",
        // Italian "non voglio più".
        "plus" if w1 == "de" && is_texting_word(w2) => {
            clear("freetext.revocation.fr_plus_de_sms", i + 3)
        }
        "keine" if is_texting_word(w1) || matches!(w1, "nachrichten" | "mehr" | "werbung") => {
            clear("freetext.revocation.de_keine_sms", i + 2)
        }
        "nao" | "non"
            if matches!(
                w1,
                "quero"
                    | "mande"
                    | "mandem"
                    | "envie"
                    | "enviem"
                    | "voglio"
                    | "mandate"
                    | "inviate"
                    | "scrivete"
            ) && (i + 2..i + 5).any(|j| matches!(text(t, j), "mais" | "piu")) =>
        {
            clear("freetext.revocation.pt_it_no_more", i + 2)
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
pub(super) fn do_not(t: &[Token<'_>], neg: usize, verb: usize) -> Option<Found> {
    let v = text(t, verb);
    if is_contact_verb(v) {
        return Some(Found::new(
            Intent::OptOut,
            Tier::Clear,
            "freetext.revocation.do_not_text",
            Matched::Span(neg, verb + 1),
        ));
    }
    if is_consent_word(v) || matches!(v, "agree" | "authorize" | "authorise") {
        return Some(Found::new(
            Intent::OptOut,
            Tier::Clear,
            "freetext.revocation.do_not_consent",
            Matched::Span(neg, verb + 1),
        ));
    }
    if matches!(v, "want" | "wanna" | "need") {
        // "I don't want to receive any more messages": the texting word
        // may come a few words on, in the same clause.
        let end = (verb + 1..verb + 7)
            .take_while(|&j| j < t.len() && !t.get(j).is_some_and(|tok| tok.break_before))
            .find(|&j| is_texting_word(text(t, j)));
        return end.map(|end| {
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

/// Words for consent itself, in the listed languages.
pub(super) fn is_consent_word(w: &str) -> bool {
    matches!(
        w,
        "consent"
            | "consents"
            | "consenting"
            | "permission"
            | "permissions"
            | "authorization"
            | "authorisation"
            | "agreement"
            | "optin"
            | "consentimiento"
            | "autorizacion"
            | "permiso"
            | "consentement"
            | "autorisation"
            | "einwilligung"
            | "zustimmung"
            | "consenso"
            | "consentimento"
    )
}

/// The index of a consent word among the four words after `from`, in the
/// same clause ("withdraw *my* consent").
pub(super) fn consent_word_after(t: &[Token<'_>], from: usize) -> Option<usize> {
    (from..from + 4)
        .take_while(|&j| j < t.len() && !t.get(j).is_some_and(|tok| tok.break_before))
        .find(|&j| is_consent_word(text(t, j)))
}
