//! The keyword table: opt-out, help and opt-in words in the languages
//! patients write, each with its rule id, languages and source.
//!
//! Words are stored as [`super::normalize`] gives them: lower case, accents
//! and other combining marks dropped ("arrêt" is `arret`, "dừng" is `dung`,
//! "إيقاف" is `ايقاف`), Hangul composed. A test checks that every entry is
//! in that form, so a keyword can never be unreachable.
//!
//! # Sources
//! - `fcc`: 47 CFR 64.1200(a)(10) (FCC 24-24): stop, quit, end, revoke,
//!   opt out, cancel, unsubscribe are per se revocations.
//! - `carrier`: the US and Canadian carrier lists (AWS End User Messaging's
//!   required opt-out keywords: ARRET, CANCEL, END, OPT-OUT, OPTOUT, QUIT,
//!   REMOVE, STOP, TD, UNSUBSCRIBE; STOPALL, START, UNSTOP from the CTIA
//!   Messaging Principles and Best Practices and carrier opt-in handling).
//! - `ctia`: CTIA Messaging Principles and Best Practices (HELP, INFO; YES
//!   after an opt-out).
//! - `cwta`: the Canadian Common Short Code guidelines (CWTA) give the French
//!   ARRET and AIDE beside STOP and HELP.
//! - `zh`: the Chinese carriers' refusal keyword TD (退订, *tuìdìng*), the means
//!   of refusal that MIIT's 通信短信息服务管理规定 (2015) requires of commercial
//!   messages.
//! - `ko`: 수신거부 ("refuse reception"), the opt-out every Korean advertising
//!   message must offer free of charge (Act on Promotion of Information and
//!   Communications Network Utilization, art. 50).
//! - `usage`: no carrier or regulator publishes a list for this language in
//!   the US; the words are the imperative and noun forms a native speaker
//!   uses to say stop, unsubscribe, cancel, help and start, reviewed for
//!   other senses (see `in_sentence`).

use super::Intent;

/// One keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyword {
    /// The normalized word or words (single spaces between words).
    pub word: &'static str,
    /// Opt-out, help or opt-in.
    pub intent: Intent,
    /// The rule id reported when it decides, e.g. `keyword.fr.desabonner`.
    pub rule: &'static str,
    /// ISO 639-1 codes of the languages that use it.
    pub languages: &'static [&'static str],
    /// Where the word comes from (see the module docs).
    pub source: &'static str,
    /// Whether the word inside a longer sentence still reads as this intent
    /// (then a doubtful opt-out). False for words with a common other sense
    /// in their language: Spanish *para* ("for"), Vietnamese *dung* (also
    /// *dùng*, "use", once accents fold), German *ende* ("end" as a noun).
    pub in_sentence: bool,
    /// An opt-in word only while the number is opted out (YES, SÍ, OUI…):
    /// otherwise it is an answer to the last prompt.
    pub after_opt_out: bool,
    /// Written in a script without spaces between words (Chinese) or with
    /// particles attached (Korean): found inside a longer word too.
    pub unspaced: bool,
}

const fn kw(
    word: &'static str,
    intent: Intent,
    rule: &'static str,
    languages: &'static [&'static str],
    source: &'static str,
) -> Keyword {
    Keyword {
        word,
        intent,
        rule,
        languages,
        source,
        in_sentence: true,
        after_opt_out: false,
        unspaced: false,
    }
}

/// Only when the whole reply is keywords and filler.
const fn alone(k: Keyword) -> Keyword {
    Keyword {
        in_sentence: false,
        ..k
    }
}

/// An opt-in word that counts only after an opt-out.
const fn after_opt_out(k: Keyword) -> Keyword {
    Keyword {
        after_opt_out: true,
        ..k
    }
}

/// Found inside longer words (Chinese, Korean).
const fn unspaced(k: Keyword) -> Keyword {
    Keyword {
        unspaced: true,
        ..k
    }
}

use Intent::{Help, OptIn, OptOut};

/// Every keyword. Order matters only for display.
pub static KEYWORDS: &[Keyword] = &[
    // English: the FCC's per se list.
    kw("stop", OptOut, "keyword.fcc.stop", &["en"], "fcc"),
    kw("quit", OptOut, "keyword.fcc.quit", &["en"], "fcc"),
    kw("end", OptOut, "keyword.fcc.end", &["en"], "fcc"),
    kw("revoke", OptOut, "keyword.fcc.revoke", &["en"], "fcc"),
    kw("opt out", OptOut, "keyword.fcc.opt_out", &["en"], "fcc"),
    kw("cancel", OptOut, "keyword.fcc.cancel", &["en"], "fcc"),
    kw(
        "unsubscribe",
        OptOut,
        "keyword.fcc.unsubscribe",
        &["en"],
        "fcc",
    ),
    // Carrier lists.
    kw(
        "stopall",
        OptOut,
        "keyword.carrier.stopall",
        &["en"],
        "carrier",
    ),
    kw(
        "optout",
        OptOut,
        "keyword.carrier.optout",
        &["en"],
        "carrier",
    ),
    kw(
        "arret",
        OptOut,
        "keyword.carrier.arret",
        &["fr"],
        "carrier, cwta",
    ),
    kw(
        "remove",
        OptOut,
        "keyword.carrier.remove",
        &["en"],
        "carrier",
    ),
    kw("td", OptOut, "keyword.carrier.td", &["zh"], "carrier, zh"),
    kw("unsub", OptOut, "keyword.en.unsub", &["en"], "usage"),
    kw("help", Help, "keyword.ctia.help", &["en"], "ctia"),
    kw("info", Help, "keyword.ctia.info", &["en"], "ctia"),
    kw("start", OptIn, "keyword.carrier.start", &["en"], "carrier"),
    kw(
        "unstop",
        OptIn,
        "keyword.carrier.unstop",
        &["en"],
        "carrier",
    ),
    kw(
        "subscribe",
        OptIn,
        "keyword.carrier.subscribe",
        &["en"],
        "carrier",
    ),
    after_opt_out(kw("yes", OptIn, "keyword.ctia.yes", &["en"], "ctia")),
    // Spanish.
    kw("alto", OptOut, "keyword.es.alto", &["es"], "usage"),
    kw("parar", OptOut, "keyword.es.parar", &["es", "pt"], "usage"),
    alone(kw("para", OptOut, "keyword.es.para", &["es"], "usage")),
    kw("basta", OptOut, "keyword.es.basta", &["es", "it"], "usage"),
    kw(
        "cancelar",
        OptOut,
        "keyword.es.cancelar",
        &["es", "pt"],
        "usage",
    ),
    kw("detener", OptOut, "keyword.es.detener", &["es"], "usage"),
    alone(kw("baja", OptOut, "keyword.es.baja", &["es"], "usage")),
    kw(
        "darme de baja",
        OptOut,
        "keyword.es.darme_de_baja",
        &["es"],
        "usage",
    ),
    kw(
        "dar de baja",
        OptOut,
        "keyword.es.dar_de_baja",
        &["es"],
        "usage",
    ),
    kw(
        "desuscribir",
        OptOut,
        "keyword.es.desuscribir",
        &["es"],
        "usage",
    ),
    kw("ayuda", Help, "keyword.es.ayuda", &["es"], "usage"),
    kw("comenzar", OptIn, "keyword.es.comenzar", &["es"], "usage"),
    kw(
        "iniciar",
        OptIn,
        "keyword.es.iniciar",
        &["es", "pt"],
        "usage",
    ),
    after_opt_out(kw("si", OptIn, "keyword.es.si", &["es", "it"], "usage")),
    // French.
    kw("arreter", OptOut, "keyword.fr.arreter", &["fr"], "usage"),
    kw("arretez", OptOut, "keyword.fr.arretez", &["fr"], "usage"),
    kw(
        "desabonner",
        OptOut,
        "keyword.fr.desabonner",
        &["fr"],
        "usage",
    ),
    kw(
        "desinscrire",
        OptOut,
        "keyword.fr.desinscrire",
        &["fr"],
        "usage",
    ),
    kw("annuler", OptOut, "keyword.fr.annuler", &["fr"], "usage"),
    kw("aide", Help, "keyword.fr.aide", &["fr"], "cwta"),
    kw("abonner", OptIn, "keyword.fr.abonner", &["fr"], "usage"),
    kw("commencer", OptIn, "keyword.fr.commencer", &["fr"], "usage"),
    after_opt_out(kw("oui", OptIn, "keyword.fr.oui", &["fr"], "usage")),
    // Portuguese.
    kw("pare", OptOut, "keyword.pt.pare", &["pt"], "usage"),
    alone(kw("sair", OptOut, "keyword.pt.sair", &["pt"], "usage")),
    kw(
        "descadastrar",
        OptOut,
        "keyword.pt.descadastrar",
        &["pt"],
        "usage",
    ),
    kw("ajuda", Help, "keyword.pt.ajuda", &["pt"], "usage"),
    kw("comecar", OptIn, "keyword.pt.comecar", &["pt"], "usage"),
    after_opt_out(kw("sim", OptIn, "keyword.pt.sim", &["pt"], "usage")),
    // German.
    kw("stopp", OptOut, "keyword.de.stopp", &["de"], "usage"),
    alone(kw("ende", OptOut, "keyword.de.ende", &["de"], "usage")),
    kw("abmelden", OptOut, "keyword.de.abmelden", &["de"], "usage"),
    kw(
        "abbestellen",
        OptOut,
        "keyword.de.abbestellen",
        &["de"],
        "usage",
    ),
    kw("kundigen", OptOut, "keyword.de.kundigen", &["de"], "usage"),
    kw("hilfe", Help, "keyword.de.hilfe", &["de"], "usage"),
    kw("anmelden", OptIn, "keyword.de.anmelden", &["de"], "usage"),
    after_opt_out(kw("ja", OptIn, "keyword.de.ja", &["de"], "usage")),
    // Italian.
    kw("annulla", OptOut, "keyword.it.annulla", &["it"], "usage"),
    kw("cancella", OptOut, "keyword.it.cancella", &["it"], "usage"),
    kw(
        "disiscrivi",
        OptOut,
        "keyword.it.disiscrivi",
        &["it"],
        "usage",
    ),
    kw(
        "disiscrivimi",
        OptOut,
        "keyword.it.disiscrivimi",
        &["it"],
        "usage",
    ),
    kw("aiuto", Help, "keyword.it.aiuto", &["it"], "usage"),
    kw("iscrivi", OptIn, "keyword.it.iscrivi", &["it"], "usage"),
    kw("inizia", OptIn, "keyword.it.inizia", &["it"], "usage"),
    // Chinese (simplified and traditional).
    unspaced(kw("退订", OptOut, "keyword.zh.tuiding", &["zh"], "zh")),
    unspaced(kw("退訂", OptOut, "keyword.zh.tuiding", &["zh"], "zh")),
    unspaced(kw("停止", OptOut, "keyword.zh.tingzhi", &["zh"], "usage")),
    unspaced(kw("取消", OptOut, "keyword.zh.quxiao", &["zh"], "usage")),
    unspaced(kw("退出", OptOut, "keyword.zh.tuichu", &["zh"], "usage")),
    unspaced(kw("帮助", Help, "keyword.zh.bangzhu", &["zh"], "usage")),
    unspaced(kw("幫助", Help, "keyword.zh.bangzhu", &["zh"], "usage")),
    unspaced(kw("开始", OptIn, "keyword.zh.kaishi", &["zh"], "usage")),
    unspaced(kw("開始", OptIn, "keyword.zh.kaishi", &["zh"], "usage")),
    unspaced(kw("订阅", OptIn, "keyword.zh.dingyue", &["zh"], "usage")),
    unspaced(kw("訂閱", OptIn, "keyword.zh.dingyue", &["zh"], "usage")),
    // Vietnamese (accents fold: dừng is `dung`, hủy is `huy`).
    alone(kw("dung", OptOut, "keyword.vi.dung", &["vi"], "usage")),
    alone(kw("ngung", OptOut, "keyword.vi.ngung", &["vi"], "usage")),
    alone(kw("huy", OptOut, "keyword.vi.huy", &["vi"], "usage")),
    kw(
        "huy dang ky",
        OptOut,
        "keyword.vi.huy_dang_ky",
        &["vi"],
        "usage",
    ),
    kw("tu choi", OptOut, "keyword.vi.tu_choi", &["vi"], "usage"),
    kw("giup", Help, "keyword.vi.giup", &["vi"], "usage"),
    kw("tro giup", Help, "keyword.vi.tro_giup", &["vi"], "usage"),
    kw("bat dau", OptIn, "keyword.vi.bat_dau", &["vi"], "usage"),
    kw("dang ky", OptIn, "keyword.vi.dang_ky", &["vi"], "usage"),
    after_opt_out(kw("co", OptIn, "keyword.vi.co", &["vi"], "usage")),
    // Tagalog.
    kw("tigil", OptOut, "keyword.tl.tigil", &["tl"], "usage"),
    kw("itigil", OptOut, "keyword.tl.itigil", &["tl"], "usage"),
    kw("hinto", OptOut, "keyword.tl.hinto", &["tl"], "usage"),
    kw("ihinto", OptOut, "keyword.tl.ihinto", &["tl"], "usage"),
    kw("tama na", OptOut, "keyword.tl.tama_na", &["tl"], "usage"),
    kw("ayoko na", OptOut, "keyword.tl.ayoko_na", &["tl"], "usage"),
    kw("tulong", Help, "keyword.tl.tulong", &["tl"], "usage"),
    kw("simula", OptIn, "keyword.tl.simula", &["tl"], "usage"),
    after_opt_out(kw("oo", OptIn, "keyword.tl.oo", &["tl"], "usage")),
    // Korean.
    unspaced(kw(
        "수신거부",
        OptOut,
        "keyword.ko.susin_geobu",
        &["ko"],
        "ko",
    )),
    unspaced(kw("중지", OptOut, "keyword.ko.jungji", &["ko"], "usage")),
    unspaced(kw("그만", OptOut, "keyword.ko.geuman", &["ko"], "usage")),
    unspaced(kw("취소", OptOut, "keyword.ko.chwiso", &["ko"], "usage")),
    unspaced(kw("해지", OptOut, "keyword.ko.haeji", &["ko"], "usage")),
    unspaced(kw("도움말", Help, "keyword.ko.doummal", &["ko"], "usage")),
    unspaced(kw("시작", OptIn, "keyword.ko.sijak", &["ko"], "usage")),
    // Russian.
    kw("стоп", OptOut, "keyword.ru.stop", &["ru"], "usage"),
    kw(
        "отписаться",
        OptOut,
        "keyword.ru.otpisatsya",
        &["ru"],
        "usage",
    ),
    kw("отписка", OptOut, "keyword.ru.otpiska", &["ru"], "usage"),
    kw("отмена", OptOut, "keyword.ru.otmena", &["ru"], "usage"),
    kw("хватит", OptOut, "keyword.ru.khvatit", &["ru"], "usage"),
    kw(
        "прекратить",
        OptOut,
        "keyword.ru.prekratit",
        &["ru"],
        "usage",
    ),
    kw("помощь", Help, "keyword.ru.pomoshch", &["ru"], "usage"),
    kw("старт", OptIn, "keyword.ru.start", &["ru"], "usage"),
    kw(
        "подписаться",
        OptIn,
        "keyword.ru.podpisatsya",
        &["ru"],
        "usage",
    ),
    after_opt_out(kw("да", OptIn, "keyword.ru.da", &["ru"], "usage")),
    // Haitian Creole.
    kw("kanpe", OptOut, "keyword.ht.kanpe", &["ht"], "usage"),
    kw("sispann", OptOut, "keyword.ht.sispann", &["ht"], "usage"),
    alone(kw("rete", OptOut, "keyword.ht.rete", &["ht"], "usage")),
    kw("anile", OptOut, "keyword.ht.anile", &["ht"], "usage"),
    kw("dezabone", OptOut, "keyword.ht.dezabone", &["ht"], "usage"),
    kw("sekou", Help, "keyword.ht.sekou", &["ht"], "usage"),
    kw("ed", Help, "keyword.ht.ed", &["ht"], "usage"),
    kw("komanse", OptIn, "keyword.ht.komanse", &["ht"], "usage"),
    after_opt_out(kw("wi", OptIn, "keyword.ht.wi", &["ht"], "usage")),
    // Arabic (hamza and harakat fold: إيقاف is `ايقاف`).
    kw("توقف", OptOut, "keyword.ar.tawaqqaf", &["ar"], "usage"),
    kw("ايقاف", OptOut, "keyword.ar.iqaf", &["ar"], "usage"),
    kw("الغاء", OptOut, "keyword.ar.ilgha", &["ar"], "usage"),
    kw("مساعدة", Help, "keyword.ar.musaada", &["ar"], "usage"),
    kw("ابدا", OptIn, "keyword.ar.ibda", &["ar"], "usage"),
    after_opt_out(kw("نعم", OptIn, "keyword.ar.naam", &["ar"], "usage")),
];

/// The languages the table covers, for documentation and tests.
pub const LANGUAGES: &[&str] = &[
    "en", "es", "fr", "pt", "de", "it", "zh", "vi", "tl", "ko", "ru", "ht", "ar",
];
