//! Identifiers as people say them, for transcribed dialogue: numbers read out digit by digit
//! ("nine seven one, five five five, oh one oh seven", 一三八零零一三八零零零), dates in words
//! ("May seventh, nineteen sixty-seven", "the third of June"), ages over 89 in words after a
//! cue ("she's ninety three", 今年九十二了), e-mail addresses read out ("j dot smith at gmail
//! dot com"), street addresses in lower case or with a spoken house number ("four twelve elm
//! street"), and telephone numbers written without separators (2535550101).

use regex::Match;

use super::detect::Span;
use super::lexicon::{captures, matches, regex};
use super::patterns::chinese_number;
use super::Category;
use crate::checks::numbers::{ONES, TENS as TENS_WORDS};

const DIGIT: &str = "one|two|three|four|five|six|seven|eight|nine";
const TEEN: &str = "ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen";
const TENS: &str = "twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety";
const MONTH: &str = "january|february|march|april|may|june|july|august|september|october|november|december";
const MONTH_BUT_MAY: &str = "january|february|march|april|june|july|august|september|october|november|december";
const ORDINAL: &str = "twenty[- ]?(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth)|thirty[- ]?first|first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|thirtieth|[1-9](?:st|nd|rd|th)|[12][0-9](?:st|nd|rd|th)|3[01](?:st|nd|rd|th)";
const STREET: &str = "street|avenue|road|lane|drive|court|boulevard|way|place|circle|terrace|parkway|highway";

/// A year as spoken: nineteen sixty-seven, nineteen oh five, two thousand and three, twenty
/// twenty-one.
fn spoken_year() -> String {
    let below_100 = format!("(?:{TENS})(?:[- ](?:{DIGIT}))?|{TEEN}|{DIGIT}");
    format!("(?:nineteen|twenty)[- ](?:oh[- ](?:{DIGIT})|(?:{TENS})(?:[- ](?:{DIGIT}))?|{TEEN}|hundred)|two thousand(?:[- ]and)?(?:[- ](?:{below_100}))?")
}

regex!(
    DATE_MONTH_FIRST = format!(
        r"(?i)\b(?:{MONTH_BUT_MAY}|(?-i:May))(?: the)? (?:{ORDINAL})\b(?:,? (?:of )?(?:{}|(?:19|20)\d\d))?\b",
        spoken_year()
    )
);
// "may seventh": lower-case May before an ordinal past "second" ("you may first notice" is a verb).
regex!(
    DATE_MAY = format!(
        r"\bmay(?: the)? (?:{})\b(?:,? (?:of )?(?:{}|(?:19|20)\d\d))?\b",
        ORDINAL.replace("|first|second|", "|"),
        spoken_year()
    )
);
regex!(
    DATE_DAY_FIRST =
        format!(r"(?i)\b(?:the )?(?:{ORDINAL}) of (?:{MONTH})\b(?:,? (?:{}|(?:19|20)\d\d))?\b", spoken_year())
);
// "June twelve", "march twenty one": a cardinal day after every month but May (a verb too).
regex!(
    DATE_CARDINAL = format!(
        r"(?i)\b(?:january|february|march|april|june|july|august|september|october|november|december) (?:twenty(?:[- ](?:{DIGIT}))?|thirty(?:[- ]one)?|{TEEN}|{DIGIT})\b(?:,? (?:{}|(?:19|20)\d\d))?\b",
        spoken_year()
    )
);
// A month and a spoken year (a written one is the date rules' TEXT_MY).
regex!(DATE_MONTH_YEAR = format!(r"(?i)\b(?:{MONTH}),? (?:of )?(?:{})\b", spoken_year()));

// Spanish: "el quince de enero", "primero de mayo del cincuenta y siete", "4 de marzo" (the
// last is the date rules').
const ES_UNIT: &str = "uno|dos|tres|cuatro|cinco|seis|siete|ocho|nueve";
const ES_DAY: &str = "treinta y uno|primero|veintiuno|veintiún|veintidós|veintidos|veintitrés|veintitres|veinticuatro|veinticinco|veintiséis|veintiseis|veintisiete|veintiocho|veintinueve|dieciséis|dieciseis|diecisiete|dieciocho|diecinueve|diez|once|doce|trece|catorce|quince|veinte|treinta|uno|dos|tres|cuatro|cinco|seis|siete|ocho|nueve";
const ES_MONTH: &str = "enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|setiembre|octubre|noviembre|diciembre";
fn es_below_100() -> String {
    format!("(?:veinte|treinta|cuarenta|cincuenta|sesenta|setenta|ochenta|noventa)(?: y (?:{ES_UNIT}))?|{ES_DAY}")
}
regex!(
    DATE_ES = format!(
        r"(?i)\b(?:el )?(?:{ES_DAY}) de (?:{ES_MONTH})\b(?:,? (?:de|del) (?:(?:19|20)\d\d|(?:mil novecientos|dos mil)(?: (?:{b}))?|(?:{b}))\b)?",
        b = es_below_100()
    )
);
// A day said alone without a cue before it ("[patient] the twentieth i had to leave"): an
// ordinal past "third" (or any written one) that ends its phrase, where a month, a weekday or
// an appointment was spoken of shortly before. [`DAY_ALONE`] takes those after a cue.
regex!(
    DAY_UNCUED = format!(
        r"(?i)\bthe ((?:{})|(?:[1-9]|[12][0-9]|3[01])(?:st|nd|rd|th))\b(?:$|[ \t]*(?:[.,;:!?)\n]|(?:at|if|i|we|he|she|it|they|was|is|works|then|please|right|ok|okay|that|so|when|until|in the|yeah|yes)\b))",
        ORDINAL.replace("|first|second|third|", "|").replace(r"|[1-9](?:st|nd|rd|th)|[12][0-9](?:st|nd|rd|th)|3[01](?:st|nd|rd|th)", "")
    )
);
regex!(
    DAY_CONTEXT = format!(
        r"(?i)\b(?:{MONTH_BUT_MAY}|(?-i:May)|monday|tuesday|wednesday|thursday|friday|saturday|sunday|appointment|appt|schedule|scheduled|booked|follow[- ]?up|come back|see you|this month|last month|next month)\b"
    )
);

// An age after a cue that makes the number an age: "she's ninety three", "turned 94".
regex!(
    AGE_CUED = format!(
        r"(?i)\b(?:i['’]m|i am|i was|you are|you['’]re|she['’]s|he['’]s|she is|he is|she was|he was|who['’]s|who is|turned|turning|turns|makes you|makes her|makes him|aged|age|at the age of|at age|lived to|made it to|she['’]ll be|he['’]ll be|i['’]ll be|will be)[ ]+(?:about |almost |nearly |now |just |only )?((?:ninety|a hundred|one hundred)(?:[- ](?:and[- ])?(?:{DIGIT}))?)\b"
    )
);
// An age over 89 alone ("Ninety-three."), which needs a question about age shortly before.
regex!(AGE_BARE = format!(r"(?i)\b(?:ninety|a hundred|one hundred)(?:[- ](?:and[- ])?(?:{DIGIT}))?\b"));
regex!(AGE_QUESTION = r"(?i)\bhow old\b|\bage\b|\bmakes you\b|多大|几岁|岁数|年纪|年龄|活到|周岁|虚岁");
regex!(AGE_ZH_BARE = r"九十[一二三四五六七八九]?|一百零?[一二三四五六七八九十]?");
// A date of birth read as three numbers: "ten, fourteen, forty-eight".
regex!(
    DOB_NUMBERS = format!(
        r"(?i)\b((?:{TENS})(?:[- ](?:{DIGIT}))?|{TEEN}|{DIGIT})[,.]? ((?:{TENS})(?:[- ](?:{DIGIT}))?|{TEEN}|{DIGIT})[,.]? ((?:{TENS})(?:[- ](?:{DIGIT}))?|{TEEN}|oh[- ](?:{DIGIT}))\b"
    )
);
regex!(DOB_CUE = r"(?i)\b(?:birth|born|dob|birthday)\b");
// Chinese days: 上个月十八号, lunar 腊月二十七, 初八.
regex!(
    ZH_DAY = r"(?:上个月|下个月|这个月|本月|上月|下月|今天|明天|昨天|到|是)((?:[一二三]?十[一二三四五六七八九]?|[一二三四五六七八九])号|(?:[12]?\d|3[01])号)|(?:正月|腊月|冬月|[一二三四五六七八九十]月)初[一二三四五六七八九十]|(?:正月|腊月|冬月)(?:二十|十|廿|三十)?[一二三四五六七八九]?"
);
regex!(
    AGE_ZH_CUED = r"(?:今年|年纪|年龄)[ 　:：]*((?:九十|一百零?)[一二三四五六七八九十多]?)|((?:九十|一百零?)[一二三四五六七八九十多]?)(?:了|啦|岁)"
);
regex!(
    EMAIL_SPOKEN = r"(?i)\b(?:[a-z](?: [a-z]\b)+|[a-z0-9]+)(?:(?: dot | underscore | dash | hyphen |[._-]| (?:zero|oh|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)\b)(?:[a-z](?: [a-z]\b)+|[a-z0-9]*))* at (?:sign |symbol )?[a-z0-9]+(?:(?: dot |\.)[a-z0-9]+)*(?: dot |\.)(?:com|org|net|edu|gov|co|uk|us|ca|cn|io|info|me|biz)\b"
);
// The same in Chinese speech: "zhang lei 一九八八 艾特 一六三点com".
regex!(
    EMAIL_ZH = r"(?i)[a-z0-9〇零一二三四五六七八九幺](?:[a-z0-9._ ]|[〇零一二三四五六七八九幺])*?[ ]?(?:艾特|圈a) ?(?:[a-z0-9]|[〇零一二三四五六七八九幺])+(?: ?(?:点|dot|\.) ?[a-z0-9]+)*? ?(?:点|dot|\.) ?(?:com|cn|net|org)\b"
);
regex!(
    STREET_SPOKEN = format!(
        r"(?i)\b(?:(?:flat|apartment|apt|unit|suite) (?:\d+|{DIGIT}|{TEEN}|{TENS}),? )?(?:\d{{1,6}}|(?:{DIGIT}|{TEEN}|{TENS})(?:[- ](?:{DIGIT}|oh|{TEEN}|{TENS}|hundred|and))*) ((?:[a-z]+ ){{1,3}}?)(?:{STREET})\b(?:,? (?:apartment|apt|unit|suite|flat) (?:\d+|{DIGIT}|{TEEN}|{TENS})(?: [a-z]\b)?)?"
    )
);
regex!(PHONE_BARE = r"\b[2-9]\d{2}[2-9]\d{6}\b");
// "on the twenty first", "Tuesday the fourth": a day of the month without its month.
regex!(
    DAY_ALONE = format!(
        r"(?i)(?:[:：] *|\b(?:on|by|until|till|since|before|after|from|through|thru|of|is|was|it['’]s|that['’]s|no|sorry|actually|yes|night|morning|monday|tuesday|wednesday|thursday|friday|saturday|sunday)[,.…]*\s+)(the (?:{ORDINAL}))\b"
    )
);
// A street named after a preposition, in any case: "on hancock street", "at Codman Square".
regex!(
    STREET_AFTER = r"(?i)\b(?:on|at|off|near|by|from|onto|down|to|of) ((?:[a-z][a-z'.]* ){1,2}?(?:street|avenue|road|lane|drive|court|boulevard|place|terrace|parkway|square))\b"
);
// Pharmacy and shop chains, named as the place where someone works or fills a prescription.
regex!(
    CHAIN = r"(?i)\b(?:cvs|walgreens|rite aid|walmart|costco|kroger|safeway|home depot|family dollar|dollar general|stop (?:and|&) shop|superdrug|lloyds pharmacy|tesco|sainsbury's)\b|(?-i:\bBoots\b)|老百姓大药房|大参林|益丰大药房|海王星辰|同仁堂|华润万家|永辉超市|沃尔玛|家乐福"
);
// An IPv4 address read out: "eighty-one, dot, two, dot, sixty-nine, dot, one forty-two".
regex!(
    IP_SPOKEN = {
        let part = format!("zero|oh|{DIGIT}|{TEEN}|{TENS}|hundred");
        let group = format!(r"(?:\d{{1,3}}|(?:{part})(?:[ -](?:{part}|and)){{0,4}})");
        let dot = r",? dot,? ";
        format!(r"(?i)\b{group}{dot}{group}{dot}{group}{dot}{group}\b")
    }
);
// A web address read out: "kingsland medical dot co dot uk slash book", "www dot mychart dot org".
regex!(
    URL_SPOKEN = r"(?i)\b(?:(?:https?|www|w w w)(?: colon slash slash| (?-i:dot))? )?(?:[a-z0-9]+ ){0,2}[a-z0-9]+(?: (?-i:dot) [a-z0-9]+)*? (?-i:dot) (?:com|org|net|edu|gov|co (?-i:dot) uk|org (?-i:dot) uk|nhs (?-i:dot) uk|com (?-i:dot) au|io|info|health|us|ca|cn)\b(?: slash [a-z0-9]+(?:[ -][a-z0-9]+)?)*"
);
regex!(WORD = r"[A-Za-z]+");
regex!(ORDINAL_WORD = format!("^(?:{ORDINAL})$"));
// Seven or more Chinese digits read out, in groups split by a comma or a space.
regex!(ZH_DIGITS = r"[〇零一二三四五六七八九幺](?:[，, ]?[〇零一二三四五六七八九幺]){6,}");

/// Words that cannot name a street between a number and "street": "five minutes down the road".
const NOT_STREET_NAMES: [&str; 51] = [
    "the", "a", "an", "to", "down", "up", "off", "of", "on", "in", "at", "by", "from", "minutes", "miles", "blocks",
    "hours", "mins", "kilometers", "feet", "yards", "more", "other", "same", "that", "this", "my", "your", "his",
    "her", "their", "our", "its", "and", "or", "walk", "either", "any", "no", "which", "every", "long", "wrong",
    "right", "i", "you", "we", "they", "it", "still", "back",
];

/// Words before a web address read out that are not part of it.
const NOT_HOST_WORDS: [&str; 22] = [
    "at", "to", "on", "online", "website", "site", "visit", "go", "is", "it's", "its", "the", "our", "their", "your",
    "and", "or", "just", "also", "page", "portal", "via",
];

/// Chinese readings a number after them is the value of.
const READINGS_ZH: [&str; 10] = ["心率", "血压", "高压", "低压", "血糖", "体温", "体重", "脉搏", "血氧", "心跳"];

/// Words after a number that make it a measurement rather than an age.
const UNITS: [&str; 29] = [
    "percent", "pounds", "lbs", "lb", "kilos", "kilograms", "kg", "degrees", "over", "point", "mg", "milligrams",
    "mmhg", "bpm", "beats", "minutes", "mins", "seconds", "hours", "days", "weeks", "months", "dollars", "units",
    "ml", "feet", "inches", "cm", "percentile",
];

/// Is `word` (lower case) a unit of measurement, a dose form or a length of time?
pub(crate) fn is_unit_word(word: &str) -> bool {
    UNITS.contains(&word) || ["tabs", "tablets", "pills", "caps", "capsules", "puffs", "drops", "doses", "times", "day", "week", "hour"].contains(&word)
}

/// Adds every spoken identifier in `text` to `out`.
pub(crate) fn find(text: &str, out: &mut Vec<Span>) {
    digit_runs(text, out);
    for c in matches(&ZH_DIGITS, text) {
        let digits = c.as_str().chars().filter(|ch| !"，, ".contains(*ch)).count();
        let mobile = digits == 11 && c.as_str().starts_with('一');
        let cat = cued(text, c.start()).unwrap_or(if mobile { Category::Phone } else { Category::Other });
        out.push(Span::new(cat, c.start(), c.end(), 0.8));
    }
    for (re, conf) in
        [(&DATE_MONTH_FIRST, 0.9), (&DATE_MAY, 0.85), (&DATE_DAY_FIRST, 0.9), (&DATE_CARDINAL, 0.75), (&DATE_MONTH_YEAR, 0.8)]
    {
        for m in matches(re, text) {
            out.push(Span::new(Category::Date, m.start(), m.end(), conf));
        }
    }
    for m in matches(&DATE_ES, text) {
        out.push(Span::new(Category::Date, m.start(), m.end(), 0.85));
    }
    for c in captures(&DAY_UNCUED, text) {
        let (Some(all), Some(day)) = (c.get(0), c.get(1)) else { continue };
        if matches(&DAY_CONTEXT, &before(text, all.start(), 300)).next().is_some() {
            out.push(Span::new(Category::Date, all.start(), day.end(), 0.7));
        }
    }
    spelled_words(text, out);
    for c in captures(&AGE_CUED, text) {
        if let Some(m) = c.get(1) {
            if !unit_after(text, m.end()) {
                out.push(Span::new(Category::Age, m.start(), m.end(), 0.85));
            }
        }
    }
    for m in matches(&AGE_BARE, text).chain(matches(&AGE_ZH_BARE, text)) {
        let zh_unit = text[m.end()..].starts_with(|ch: char| "天日月周年分次斤克米度个%号元块".contains(ch));
        let zh_ok = chinese_number(m.as_str()).map_or(true, |v| (90..=130).contains(&v));
        if zh_ok && !zh_unit && !unit_after(text, m.end()) && asked(text, m.start(), &AGE_QUESTION, 150) {
            out.push(Span::new(Category::Age, m.start(), m.end(), 0.75));
        }
    }
    for c in captures(&DOB_NUMBERS, text) {
        let (Some(all), Some(month), Some(day)) = (c.get(0), c.get(1), c.get(2)) else {
            continue;
        };
        let plausible = words_value(month.as_str()).is_some_and(|v| (1..=12).contains(&v))
            && words_value(day.as_str()).is_some_and(|v| (1..=31).contains(&v));
        if plausible && asked(text, all.start(), &DOB_CUE, 100) {
            out.push(Span::new(Category::Date, all.start(), all.end(), 0.8));
        }
    }
    for c in captures(&ZH_DAY, text) {
        let Some(m) = c.get(1).or_else(|| c.get(0)) else {
            continue;
        };
        let house = text[m.end()..].starts_with(|ch: char| "楼床室房门线院病栋单".contains(ch));
        if m.len() > 3 && !house {
            out.push(Span::new(Category::Date, m.start(), m.end(), 0.75));
        }
    }
    for c in captures(&AGE_ZH_CUED, text) {
        if let Some(m) = c.get(1).or_else(|| c.get(2)) {
            let unit = text[m.end()..].starts_with(|ch: char| "天日月周年分次斤克米度个%".contains(ch));
            // 九十多 ("over ninety") is an age over 89 too; 一百二 is 120 in speech, and no age
            // after a reading (心率九十了).
            let value = chinese_number(m.as_str().trim_end_matches('多'));
            let s = m.as_str();
            let clipped = s.starts_with("一百") && s.chars().count() == 3 && !s.contains(['零', '多']);
            let reading = READINGS_ZH.iter().any(|w| before(text, m.start(), 12).contains(w));
            if value.is_some_and(|v| (90..=130).contains(&v)) && !unit && !clipped && !reading {
                out.push(Span::new(Category::Age, m.start(), m.end(), 0.85));
            }
        }
    }
    let emails: Vec<Match> = matches(&EMAIL_SPOKEN, text).chain(matches(&EMAIL_ZH, text)).collect();
    for m in &emails {
        // "it's j dot smith …": the "s" after an apostrophe is not a letter spelled out.
        let start = if text[..m.start()].ends_with(['\'', '’']) {
            m.as_str().find(' ').map_or(m.end(), |at| m.start() + at + 1)
        } else {
            m.start()
        };
        out.push(Span::new(Category::Email, start, m.end(), 0.9));
    }
    for m in matches(&IP_SPOKEN, text) {
        out.push(Span::new(Category::IpAddress, m.start(), m.end(), 0.85));
    }
    // The e-mail addresses as sorted, disjoint ranges: a web address inside one is its domain.
    let mut ranges: Vec<(usize, usize)> = emails.iter().map(|e| (e.start(), e.end())).collect();
    ranges.sort_unstable();
    let mut taken: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match taken.last_mut() {
            Some(last) if start < last.1 => last.1 = last.1.max(end),
            _ => taken.push((start, end)),
        }
    }
    for m in matches(&URL_SPOKEN, text) {
        let next = taken.partition_point(|&(_, end)| end <= m.start());
        if taken.get(next).is_some_and(|&(start, _)| start < m.end()) {
            continue;
        }
        // The words before the address that are not part of it: "book online at", "go to".
        let mut start = m.start();
        for w in m.as_str().split(' ') {
            if !NOT_HOST_WORDS.contains(&w.to_ascii_lowercase().as_str()) {
                break;
            }
            start += w.len() + 1;
        }
        if start < m.end() && !m.as_str()[start - m.start()..].to_ascii_lowercase().starts_with("dot ") {
            out.push(Span::new(Category::Url, start, m.end(), 0.85));
        }
    }
    for c in captures(&STREET_SPOKEN, text) {
        let (Some(all), Some(name)) = (c.get(0), c.get(1)) else {
            continue;
        };
        if name.as_str().split_whitespace().all(|w| !NOT_STREET_NAMES.contains(&w.to_lowercase().as_str())) {
            out.push(Span::new(Category::Location, all.start(), all.end(), 0.8));
        }
    }
    for c in captures(&DAY_ALONE, text) {
        let Some(m) = c.get(1) else { continue };
        // "on the second floor", "for the first time": the next word makes it no date.
        if text[m.end()..].starts_with('-') {
            continue;
        }
        let next = text[m.end()..].trim_start_matches(' ');
        let word: String = next.chars().take_while(char::is_ascii_alphabetic).collect::<String>().to_lowercase();
        const AFTER: [&str; 28] = [
            "", "at", "in", "or", "and", "then", "so", "is", "works", "would", "if", "to", "around", "okay", "right",
            "because", "no", "was", "it", "i", "we", "he", "she", "they", "please", "when", "yeah", "yes",
        ];
        if AFTER.contains(&word.as_str()) {
            out.push(Span::new(Category::Date, m.start(), m.end(), 0.7));
        }
    }
    for c in captures(&STREET_AFTER, text) {
        let Some(m) = c.get(1) else { continue };
        let words: Vec<String> = m.as_str().split_whitespace().map(str::to_lowercase).collect();
        if words[..words.len() - 1].iter().all(|w| !NOT_STREET_NAMES.contains(&w.as_str())) {
            out.push(Span::new(Category::Location, m.start(), m.end(), 0.75));
        }
    }
    for m in matches(&CHAIN, text) {
        // "CVS: regular rhythm" is the cardiovascular system.
        if text[m.end()..].starts_with(':') {
            continue;
        }
        out.push(Span::new(Category::Location, m.start(), m.end(), 0.75));
    }
    for m in matches(&PHONE_BARE, text) {
        if !glued(text, &m) {
            out.push(Span::new(cued(text, m.start()).unwrap_or(Category::Phone), m.start(), m.end(), 0.7));
        }
    }
}

/// The `within` bytes before `start` (to a character boundary), in lower case.
fn before(text: &str, start: usize, within: usize) -> String {
    let mut from = start.saturating_sub(within);
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    text[from..start].to_lowercase()
}

/// Where `word` last starts a word in `s` ("member" is not in "remember"); Chinese cues anywhere.
fn last_word(s: &str, word: &str) -> Option<usize> {
    s.rmatch_indices(word).map(|(at, _)| at).find(|&at| !word.is_ascii() || !s[..at].ends_with(char::is_alphanumeric))
}

fn has_word(s: &str, word: &str) -> bool {
    last_word(s, word).is_some()
}

/// Does `cue` occur in the `within` bytes before `start`?
fn asked(text: &str, start: usize, cue: &'static super::lexicon::Pattern, within: usize) -> bool {
    cue.as_ref().is_some_and(|re| re.is_match(&before(text, start, within)))
}

/// The value of a number below 100 in words ("forty-eight", "eleven", "oh five").
fn words_value(s: &str) -> Option<u32> {
    let mut total = 0;
    for w in s.to_ascii_lowercase().split([' ', '-']).filter(|w| !w.is_empty()) {
        total += match (ONES.iter().position(|&d| d == w), TENS_WORDS.iter().position(|&t| t == w)) {
            (Some(v), _) => v as u32,
            (_, Some(t)) => 10 * (t as u32 + 2),
            _ if w == "oh" => 0,
            _ => return None,
        };
    }
    Some(total)
}

/// Is `word` (lower case) a number word ("oh", "twelve", "hundred")?
pub(crate) fn is_number_word(word: &str) -> bool {
    ONES.contains(&word)
        || TENS_WORDS.contains(&word)
        || ["oh", "hundred", "thousand", "double", "triple", "and"].contains(&word)
}

/// Is `word` (lower case) a month's name, in full?
pub(crate) fn is_month(word: &str) -> bool {
    MONTH.split('|').any(|m| m == word)
}

/// Is `word` (lower case) an ordinal of a day ("first", "twenty-third", "12th")?
pub(crate) fn is_ordinal(word: &str) -> bool {
    ORDINAL_WORD.as_ref().is_some_and(|re| re.is_match(word))
}

/// Is `word` (lower case) a day of the week?
pub(crate) fn is_weekday(word: &str) -> bool {
    super::dates::WEEKDAYS.iter().any(|d| d.eq_ignore_ascii_case(word))
}

/// What a token of a number read out is.
#[derive(Clone, Copy, PartialEq)]
enum Token {
    Digit(u8),
    /// "double", "triple": the next digit said that many times.
    Repeat(u8),
    /// "ten" to "ninety" ("ninety-three" with its digit): two digits.
    Pair {
        tens: bool,
    },
    /// "hundred" after a digit: two more.
    Hundred,
    /// A letter spelled out ("M", "r").
    Letter {
        upper: bool,
    },
}

const ES_DIGITS: [&str; 10] = ["cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve"];

fn token(word: &str) -> Option<Token> {
    let lower = word.to_ascii_lowercase();
    if let Some(d) = ONES[..10].iter().position(|&d| d == lower) {
        return Some(Token::Digit(d as u8));
    }
    // Read out in Spanish: "nueve cinco seis, siete ocho uno".
    if let Some(d) = ES_DIGITS.iter().position(|&d| d == lower) {
        return Some(Token::Digit(d as u8));
    }
    Some(match lower.as_str() {
        "oh" | "o" => Token::Digit(0),
        "double" => Token::Repeat(2),
        "triple" => Token::Repeat(3),
        "hundred" => Token::Hundred,
        w if ONES[10..].contains(&w) => Token::Pair { tens: false },
        w if TENS_WORDS.contains(&w) => Token::Pair { tens: true },
        // "a" and "i" are words; "A" and "I" may be letters, inside a run only (see below).
        w if w.len() == 1 && word != "a" && word != "i" => {
            Token::Letter { upper: word.as_bytes()[0].is_ascii_uppercase() }
        }
        _ => return None,
    })
}

/// Numbers read out word by word: at least five digits' worth, three of them single digits, so
/// that years ("nineteen sixty-seven"), readings ("one forty over ninety") and counts (serial
/// sevens) are left alone; a plain count (one two three four five) is not an identifier either.
fn digit_runs(text: &str, out: &mut Vec<Span>) {
    let words: Vec<Match> = matches(&WORD, text).collect();
    let mut i = 0;
    while i < words.len() {
        let mut j = i;
        let mut run: Vec<(Token, usize, usize)> = Vec::new();
        while j < words.len() {
            let w = words[j];
            // "M as in Mary": the letter stands for itself, the rest comes along.
            let spelled = run.last().is_some_and(|(t, _, _)| matches!(t, Token::Letter { .. }))
                && j + 2 < words.len()
                && words[j].as_str().eq_ignore_ascii_case("as")
                && words[j + 1].as_str().eq_ignore_ascii_case("in")
                && joined(text, words[j - 1].end(), w.start());
            if spelled {
                if let Some(last) = run.last_mut() {
                    last.2 = words[j + 2].end();
                }
                j += 3;
                continue;
            }
            // "nine seven one dash five five five": the word stands for the dash.
            let dash = ["dash", "hyphen"].contains(&w.as_str().to_ascii_lowercase().as_str());
            if let (true, Some(last)) = (dash, run.last_mut()) {
                if joined(text, last.2, w.start()) {
                    last.2 = w.end();
                    j += 1;
                    continue;
                }
            }
            let Some(t) = token(w.as_str()) else { break };
            if let Some(&(_, _, end)) = run.last() {
                if !joined(text, end, w.start()) {
                    break;
                }
            }
            let leading_interjection = run.is_empty()
                && t == Token::Digit(0)
                && text[w.end()..].trim_start_matches(' ').starts_with([',', '.', '!']);
            match (run.last_mut(), t) {
                // "ninety-three" is one pair of digits, not a pair and a digit.
                (Some((Token::Pair { tens: true }, _, end)), Token::Digit(d)) if d > 0 => {
                    *end = w.end();
                    if let Some((p, _, _)) = run.last_mut() {
                        *p = Token::Pair { tens: false };
                    }
                }
                _ if leading_interjection => {}
                _ => run.push((t, w.start(), w.end())),
            }
            j += 1;
        }
        // Letters at the ends only in capitals ("... four two M") but not the words "A" and "I",
        // and never "hundred" first.
        let word = |s: usize, e: usize| &text[s..e];
        let lead = run.iter().take_while(|&&(t, s, e)| {
            matches!(t, Token::Letter { upper: false } | Token::Hundred) || ["A", "I"].contains(&word(s, e))
        });
        let run = &run[lead.count()..];
        let trail = run.iter().rev().take_while(|&&(t, s, e)| {
            matches!(t, Token::Letter { upper: false } | Token::Repeat(_)) || ["A", "I"].contains(&word(s, e))
        });
        let trail = trail.count();
        // Up to two letters end a number asked for by name (an Irish PPS number, "… one seven f
        // a"; a medical card, "… eight one c").
        let keep = run.first().is_some_and(|f| cued(text, f.1).is_some())
            && trail <= 2
            && run[run.len() - trail..].iter().all(|(t, _, _)| matches!(t, Token::Letter { upper: false }));
        let run = if keep { run } else { &run[..run.len() - trail] };
        // The letter "a" (a word elsewhere) ends such a number where the turn ends: "… f a".
        let mut end = run.last().map_or(0, |l| l.2);
        if keep && trail > 0 {
            let rest = &text[end..];
            let after = rest.trim_start_matches([' ', ',']);
            if after.starts_with('a') && after[1..].trim_start_matches(' ').starts_with(['\n', '.', '?', '!', ',']) {
                end += rest.len() - after.len() + 1;
            }
        }
        if let (Some(first), Some(last)) = (run.first(), run.last()) {
            let cue = cued(text, first.1);
            let memory_test = TESTS.iter().any(|w| has_word(&before(text, first.1, 100), w));
            // A plate or a code spelled after its cue: "the plate was seven, K, X, R, two, one, nine".
            // Two capitals in a row: "C five C six", "V two, V three" and "T two N zero" are
            // levels, leads and stages, not a plate.
            let capital = |t: &Token| matches!(t, Token::Letter { upper: true });
            let letters = run.windows(2).any(|w| capital(&w[0].0) && capital(&w[1].0));
            let plate = cue == Some(Category::Vehicle) && letters && run.len() >= 5 && digit_count(run) >= 2;
            let four = cue.is_some() && digit_count(run) == 4 && run.len() == 4;
            // Beside Spanish digits, "o" is "or": "tres o cuatro, cinco o seis".
            let spanish_or = run.iter().any(|&(_, s, e)| ES_DIGITS.contains(&word(s, e).to_lowercase().as_str()))
                && run.iter().any(|&(_, s, e)| word(s, e).eq_ignore_ascii_case("o"));
            if !memory_test && !spanish_or && (is_identifier(run) || four || plate) {
                let cat = cue.unwrap_or(match digit_count(run) {
                    7 | 10 | 11 => Category::Phone,
                    _ => Category::Other,
                });
                out.push(Span::new(cat, first.1, end.max(last.2), 0.8));
            }
        }
        i = j.max(i + 1);
    }
}

/// Words spelled out letter by letter, as a caller spells a name: "that's s i o b h a n",
/// "k as in kilo a y", "G-O-I-K". Three letters or more, kept when the letters make a word
/// said nearby ("siobhan ... s i o b h a n") or follow a word about spelling; alone, a run
/// of letters is more often an abbreviation ("t s h", "c o p d").
fn spelled_words(text: &str, out: &mut Vec<Span>) {
    let words: Vec<Match> = matches(&WORD, text).collect();
    let mut i = 0;
    while i < words.len() {
        let (start, mut end, mut letters) = (words[i].start(), words[i].end(), String::new());
        let mut j = i;
        // A letter of its own: not the "s" of "that's" nor the "o" of "o'brien".
        let alone = |w: &Match| !text[..w.start()].ends_with(['\'', '’']) && !text[w.end()..].starts_with(['\'', '’']);
        while j < words.len()
            && words[j].as_str().len() == 1
            && alone(&words[j])
            && (j == i || joined(text, end, words[j].start()))
        {
            letters.push(words[j].as_str().to_ascii_lowercase().chars().next().unwrap_or('?'));
            end = words[j].end();
            j += 1;
            // "k as in kilo": the word that says the letter comes along.
            let as_in = j + 2 < words.len()
                && words[j].as_str().eq_ignore_ascii_case("as")
                && words[j + 1].as_str().eq_ignore_ascii_case("in")
                && joined(text, end, words[j].start());
            if as_in {
                let mut k = j + 2;
                end = words[k].end();
                // "x-ray": a word with a hyphen is one.
                while k + 1 < words.len() && text[words[k].end()..words[k + 1].start()] == *"-" {
                    k += 1;
                    end = words[k].end();
                }
                j = k + 1;
            }
        }
        if letters.len() >= 3 {
            let near = |a: usize, b: usize| {
                let (mut a, mut b) = (a, b.min(text.len()));
                while !text.is_char_boundary(a) {
                    a += 1;
                }
                while !text.is_char_boundary(b) {
                    b -= 1;
                }
                // The whole word, or the start or end of a long one spelled in parts
                // ("mcilwraith … m c i l then w r a i t h").
                matches(&WORD, &text[a..b]).any(|w| {
                    let w = w.as_str().to_ascii_lowercase();
                    w == letters || w.len() >= letters.len() + 3 && (w.starts_with(&letters) || w.ends_with(&letters))
                })
            };
            let said = near(start.saturating_sub(400), start) || near(end, end + 400);
            let cue = ["spell", "spelled", "spelt", "spelling", "letters"].iter().any(|w| has_word(&before(text, start, 60), w));
            // "spell WORLD backwards: D-L-R-O-W" is a memory test, not a name.
            let memory_test = TESTS.iter().any(|w| has_word(&before(text, start, 100), w));
            if (said || cue) && !memory_test {
                out.push(Span::new(Category::Name, start, end, 0.8));
            }
        }
        i = j.max(i + 1);
    }
}

fn digit_count(run: &[(Token, usize, usize)]) -> usize {
    let mut n = 0;
    let mut repeat = 1;
    for (t, _, _) in run {
        match t {
            Token::Digit(_) => {
                n += repeat;
                repeat = 1;
            }
            Token::Repeat(k) => repeat = *k as usize,
            Token::Pair { .. } | Token::Hundred => n += 2,
            Token::Letter { .. } => {}
        }
    }
    n
}

/// Words shortly before a run of digits that make it a memory test, not a number.
const TESTS: [&str; 6] = ["repeat", "remember", "digits", "backwards", "backward", "count"];

fn is_identifier(run: &[(Token, usize, usize)]) -> bool {
    let singles: Vec<u8> =
        run.iter().filter_map(|(t, _, _)| if let Token::Digit(d) = t { Some(*d) } else { None }).collect();
    // A count, maybe up to "ten": one two three ... nine ten.
    let tail = run.len() - singles.len();
    let count = (tail == 0 || tail == 1 && singles.last() == Some(&9) && matches!(run.last(), Some((Token::Pair { .. }, _, _))))
        && (singles.windows(2).all(|w| w[1] == w[0] + 1) || singles.windows(2).all(|w| w[0] == w[1] + 1));
    singles.len() >= 3 && digit_count(run) >= 5 && !count
}

/// May two words of one number stand `start..end` apart: spaces, a comma, a dash, a full stop
/// or a pause ("five five five. oh one", "nine seven one... five"), but no line break (the word
/// "dash" is skipped by the caller).
fn joined(text: &str, end: usize, start: usize) -> bool {
    let gap = text[end..start].trim_matches(' ');
    gap.chars().count() <= 3 && gap.chars().all(|c| matches!(c, ',' | '-' | '.' | '…' | ' '))
}

/// Is the match glued to other letters or digits?
fn glued(text: &str, m: &Match) -> bool {
    text[..m.start()].ends_with(|c: char| c.is_alphanumeric() || c == '-')
        || text[m.end()..].starts_with(|c: char| c.is_alphanumeric())
}

/// Does a unit follow the number at `end` ("ninety two percent", "ninety pounds")?
fn unit_after(text: &str, end: usize) -> bool {
    let rest = text[end..].trim_start_matches([' ', '-']);
    if rest.starts_with('%') {
        return true;
    }
    let word: String = rest.chars().take_while(char::is_ascii_alphabetic).collect::<String>().to_lowercase();
    UNITS.contains(&word.as_str())
}

/// The kind of number the words shortly before `start` ask for (the closest cue wins): "a
/// phone number where we can reach you?", "your record number is", 医保卡号.
fn cued(text: &str, start: usize) -> Option<Category> {
    const CUES: [(&str, Category); 53] = [
        ("phone", Category::Phone),
        ("call", Category::Phone),
        ("cell", Category::Phone),
        ("mobile", Category::Phone),
        ("reach", Category::Phone),
        ("landline", Category::Phone),
        ("area code", Category::Phone),
        ("电话", Category::Phone),
        ("手机", Category::Phone),
        ("fax", Category::Fax),
        ("传真", Category::Fax),
        ("record", Category::MedicalRecord),
        ("mrn", Category::MedicalRecord),
        ("chart", Category::MedicalRecord),
        ("病历", Category::MedicalRecord),
        ("住院号", Category::MedicalRecord),
        ("门诊号", Category::MedicalRecord),
        ("insurance", Category::HealthPlan),
        ("member", Category::HealthPlan),
        ("medicare", Category::HealthPlan),
        ("medicaid", Category::HealthPlan),
        ("policy", Category::HealthPlan),
        ("医保", Category::HealthPlan),
        ("account", Category::Account),
        ("social", Category::Ssn),
        ("last four", Category::Ssn),
        ("zip", Category::Location),
        ("ssn", Category::Ssn),
        ("license", Category::License),
        ("licence", Category::License),
        ("serial", Category::Device),
        ("身份证", Category::IdNumber),
        ("aadhaar", Category::IdNumber),
        ("aadhar", Category::IdNumber),
        ("pps", Category::IdNumber),
        ("p p s", Category::IdNumber),
        ("passport", Category::IdNumber),
        ("medical card", Category::HealthPlan),
        ("visit card", Category::HealthPlan),
        ("health card", Category::HealthPlan),
        ("eircode", Category::Location),
        ("postcode", Category::Location),
        ("pin code", Category::Location),
        ("confirmation", Category::Other),
        ("reference", Category::Other),
        ("claim", Category::Other),
        ("license plate", Category::Vehicle),
        ("plate ", Category::Vehicle),
        ("plate,", Category::Vehicle),
        ("plates", Category::Vehicle),
        ("licence plate", Category::Vehicle),
        ("registration number", Category::Vehicle),
        ("车牌", Category::Vehicle),
    ];
    let before = before(text, start, 100);
    CUES.iter()
        .filter_map(|(cue, cat)| last_word(&before, cue).map(|at| (at, *cat)))
        .max_by_key(|(at, _)| *at)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(Category, String)> {
        super::super::detect::found_by(find, text)
    }

    #[test]
    fn all_patterns_compile() {
        for re in [
            &DATE_MONTH_FIRST,
            &DATE_MAY,
            &DATE_DAY_FIRST,
            &DATE_CARDINAL,
            &DATE_MONTH_YEAR,
            &AGE_CUED,
            &AGE_ZH_CUED,
            &EMAIL_SPOKEN,
            &STREET_SPOKEN,
            &PHONE_BARE,
            &DAY_ALONE,
            &DAY_UNCUED,
            &DAY_CONTEXT,
            &DATE_ES,
            &STREET_AFTER,
            &CHAIN,
            &AGE_BARE,
            &AGE_QUESTION,
            &AGE_ZH_BARE,
            &DOB_NUMBERS,
            &DOB_CUE,
            &ZH_DAY,
            &WORD,
            &ZH_DIGITS,
            &IP_SPOKEN,
            &URL_SPOKEN,
            &EMAIL_ZH,
            &ORDINAL_WORD,
        ] {
            assert!(re.is_some());
        }
    }

    #[test]
    fn numbers_read_out_take_their_kind_from_the_question() {
        let f = found(
            "D: And a phone number where we can reach you?\nP: oh, nine seven one, five five five, oh one oh seven.",
        );
        assert_eq!(f, vec![(Category::Phone, "nine seven one, five five five, oh one oh seven".into())]);
        let f = found("Your record number is eight five nine six, six two zero two.");
        assert_eq!(f, vec![(Category::MedicalRecord, "eight five nine six, six two zero two".into())]);
        let f = found("member ID is M as in Mary, R, four four two double seven one");
        assert_eq!(f, vec![(Category::HealthPlan, "M as in Mary, R, four four two double seven one".into())]);
        assert_eq!(found("电话是一三八零零一三八零零零")[0].0, Category::Phone);
        assert_eq!(found("卡号二六一二，零三零四，七一五")[0].1, "二六一二，零三零四，七一五");
        assert!(found("一、二、三、四、五、六、七").is_empty());
    }

    #[test]
    fn the_cases_a_review_found() {
        let phone = "nine seven one dash five five five dash oh one oh seven";
        assert_eq!(found(&format!("call me at {phone}")), vec![(Category::Phone, phone.into())]);
        assert_eq!(found("nine seven one... five five five... oh one oh seven").len(), 1);
        for t in [
            "count to ten: one, two, three, four, five, six, seven, eight, nine, ten",
            "repeat these digits: two one eight five four",
            "Can you remember these: seven, four, two, nine",
            "she was 120 fasting, he was 98.6",
            "心率九十了，高压一百二了",
            "you may first notice nausea",
            "Metformin is the first-line drug",
            "recheck in two weeks either way; oh I still drive",
            "are you able to walk and drive?",
            "CVS: regular rhythm",
            "这个药物美国批准，当初一直没好",
        ] {
            assert!(found(t).is_empty(), "{t}: {:?}", found(t));
        }
        assert_eq!(found("she’s ninety-three")[0].1, "ninety-three");
    }

    #[test]
    fn names_spelled_letter_by_letter_when_the_letters_make_a_word_said_or_a_spelling_was_asked() {
        let f = found("[patient] it's siobhan that's s i o b h a n and the last name");
        assert_eq!(f, vec![(Category::Name, "s i o b h a n".into())]);
        let f = found("can you spell the surname for me\n[patient] g-o-i-k-o-e-t-x-e-a");
        assert_eq!(f, vec![(Category::Name, "g-o-i-k-o-e-t-x-e-a".into())]);
        let f = found("it's mcilwraith, they get it wrong, it's m c i l then w r a i t h\n");
        assert_eq!(f, vec![(Category::Name, "m c i l".into()), (Category::Name, "w r a i t h".into())]);
        let f = found("it's d xiong at yahoo, that's x as in x-ray i o n g\n");
        assert!(f.contains(&(Category::Name, "x as in x-ray i o n g".into())), "{f:?}");
        // Abbreviations said letter by letter are no names; nor is a run no word or cue explains.
        for t in [
            "check the t s h and the c o p d plan",
            "his u h i d is on the card",
            "a b c d e f",
            "that's s o",
            "Asked to spell WORLD backwards: D-L-R-O-W",
        ] {
            assert!(found(t).is_empty(), "{t}: {:?}", found(t));
        }
    }

    #[test]
    fn numbers_asked_for_by_name_keep_their_last_letters() {
        let f = found("[doctor] and the p p s number\n[patient] eight three oh five two one seven f a\n");
        assert_eq!(f, vec![(Category::IdNumber, "eight three oh five two one seven f a".into())]);
        let f = found("your medical card? yes the number is one two seven four eight eight one c");
        assert_eq!(f, vec![(Category::HealthPlan, "one two seven four eight eight one c".into())]);
        // Without a cue, trailing letters are words ("… one two three four, so b")
        assert_eq!(found("it was nine five five one two three so b")[0].1, "nine five five one two three");
    }

    #[test]
    fn spanish_dates_in_words_and_days_said_alone() {
        assert!(found("unas tres o cuatro, cinco o seis veces").is_empty());
        let phone = "nueve cinco seis, siete ocho uno, cuatro cuatro dos nueve";
        assert_eq!(found(&format!("Put my cell phone: {phone}.")), vec![(Category::Phone, phone.into())]);
        assert_eq!(found("Nací el quince de enero del cincuenta y siete.")[0].1, "el quince de enero del cincuenta y siete");
        assert_eq!(found("fue el primero de mayo")[0].1, "el primero de mayo");
        assert!(found("tomo dos de las pastillas").is_empty());
        // After a cue, across a line break, or (without one) where a month or a visit came up.
        assert_eq!(found("a note for work until the 11th. If he")[0].1, "the 11th");
        assert_eq!(found("spoke to her on\nthe 4th; he will")[0].1, "the 4th");
        assert_eq!(found("it blew up Tuesday night, the 4th. Could")[0].1, "the 4th");
        let f = found("[doctor] when was the last bad one in march\n[patient] the twentieth i had to leave");
        assert_eq!(f, vec![(Category::Date, "the twentieth".into())]);
        for t in [
            "the fourth ventricle is normal",
            "for the tenth time",
            "the fifth toe. It hurts",
            "on the 5th floor",
            "Second syncopal episode, similar to the first.",
            "numbness radiating to the 4th and 5th fingers",
            "Date of visit: 3/4. Tenderness over the 4th and 5th metacarpals",
            "pulse is now ninety eight",
        ] {
            assert!(found(t).is_empty(), "{t}: {:?}", found(t));
        }
        assert_eq!(found("and you are now ninety two is that right")[0].1, "ninety two");
    }

    #[test]
    fn a_long_run_of_spelled_letters_is_trimmed_in_one_pass() {
        // 200,000 letters before the digits: trimming them one at a time from the front took
        // quadratic time.
        let letters = "b ".repeat(200_000);
        assert!(found(&letters).is_empty());
        let f = found(&format!("{letters}one two four one two four"));
        assert_eq!(f, vec![(Category::Other, "one two four one two four".into())]);
    }

    #[test]
    fn readings_counts_years_and_serial_sevens_are_not_numbers_read_out() {
        for t in [
            "blood pressure was one forty over ninety, pulse one oh two",
            "count with me: one two three four five six",
            "serial sevens: ninety-three, eighty-six, seventy-nine, seventy-two",
            "back in nineteen sixty-seven, twenty twenty-one too",
            "take one or two tablets three times a day",
        ] {
            assert!(found(t).is_empty(), "{t}: {:?}", found(t));
        }
    }

    #[test]
    fn dates_in_words() {
        assert_eq!(found("born May seventh, nineteen sixty-seven.")[0].1, "May seventh, nineteen sixty-seven");
        assert_eq!(found("seen on the twelfth of march")[0].1, "the twelfth of march");
        assert_eq!(found("next visit june twelve at ten")[0].1, "june twelve");
        assert_eq!(found("since March of two thousand twenty")[0].1, "March of two thousand twenty");
        assert!(found("you may seven times a day").is_empty());
        assert_eq!(found("does may seventh work")[0].1, "may seventh");
        assert!(found("you may second-guess it; you may first call").is_empty());
    }

    #[test]
    fn ages_over_89_in_words_after_a_cue_but_not_readings() {
        assert_eq!(found("She's ninety three."), vec![(Category::Age, "ninety three".into())]);
        assert_eq!(found("he turned a hundred and one"), vec![(Category::Age, "a hundred and one".into())]);
        assert_eq!(found("老人家今年九十二了"), vec![(Category::Age, "九十二".into())]);
        assert_eq!(found("九十多岁的老人"), vec![(Category::Age, "九十多".into())]);
        assert!(found("she's ninety two percent on room air; he is 67").is_empty());
        assert!(found("已经九十天了").is_empty());
    }

    #[test]
    fn days_without_a_month_streets_after_a_preposition_and_chains() {
        assert_eq!(found("come back on the twenty first."), vec![(Category::Date, "the twenty first".into())]);
        assert_eq!(found("Tuesday the fourth at ten")[0].1, "the fourth");
        assert!(found("on the second floor, for the first time").is_empty());
        assert_eq!(found("the pharmacy on granite avenue")[0].1, "granite avenue");
        assert!(found("down the road, on the same street").is_empty());
        assert_eq!(found("fill it at the cvs; she works at Boots")[1].1, "Boots");
        assert!(found("wear your boots").is_empty());
    }

    #[test]
    fn answers_to_questions_about_age_and_birth() {
        let f = found("How old are you?\nP: I'm, um... ninety-two. No. Ninety-three.");
        assert_eq!(f.iter().map(|x| x.1.as_str()).collect::<Vec<_>>(), ["ninety-two", "Ninety-three"]);
        assert!(found("pulse ninety, sats ninety-two percent").is_empty());
        assert_eq!(found("she lived to ninety-four")[0].1, "ninety-four");
        assert_eq!(found("您今年多大岁数了？\n患者：我呀……九十二了。")[0].1, "九十二");
        assert!(found("血压一百二十，心率九十").is_empty());
        assert_eq!(found("and your birthday?\nten, fourteen, forty-eight.")[0].1, "ten, fourteen, forty-eight");
        assert!(found("sets of ten, fourteen, forty-eight reps").is_empty());
        assert_eq!(found("上个月十八号，她烧着水")[0].1, "十八号");
        assert_eq!(found("腊月二十七回来，正月初八走")[1].1, "正月初八");
        assert!(found("住在五号楼，三号床").is_empty());
        assert_eq!(found("the last four of your social\nP: it's six six zero three.")[0].0, Category::Ssn);
    }

    #[test]
    fn ip_and_web_addresses_and_plates_read_out() {
        let ip = "eighty-one, dot, two, dot, sixty-nine, dot, one forty-two";
        assert_eq!(found(&format!("the connection from {ip} is unstable")), vec![(Category::IpAddress, ip.into())]);
        assert_eq!(found("it's ten dot zero dot one dot two fifty")[0].1, "ten dot zero dot one dot two fifty");
        let url = "kingsland medical dot co dot uk slash book";
        assert_eq!(found(&format!("you can also book online at {url}.")), vec![(Category::Url, url.into())]);
        assert_eq!(found("go to www dot mychart dot org")[0].1, "www dot mychart dot org");
        let spelled = "D O R O T A dot K six three at outlook dot com";
        assert_eq!(found(&format!("it's {spelled}, yes")), vec![(Category::Email, spelled.into())]);
        let zh = "zhang lei 一九八八 艾特 一六三点com";
        let spaced = "huangwq 一九六二 艾特 qq 点 com";
        assert_eq!(found(&format!("患者：{spaced}。"))[0].1, spaced);
        assert_eq!(found(&format!("邮箱是{zh}。"))[0].1, zh);
        assert_eq!(found("we're at flat six, forty-two Dalston Lane")[0].1, "flat six, forty-two Dalston Lane");
        let email = found("it's j dot smith at gmail dot com");
        assert_eq!(email, vec![(Category::Email, "j dot smith at gmail dot com".into())]);
        let plate = "seven, K, X, R, two, one, nine";
        let f = found(&format!("the cop got his plate, it was, uh, {plate}."));
        assert_eq!(f, vec![(Category::Vehicle, plate.into())]);
        let f = found("license plate number is eight, A, B, C, one, two, three. A friend");
        assert_eq!(f, vec![(Category::Vehicle, "eight, A, B, C, one, two, three".into())]);
        let phone = "nine seven one five five five oh one oh seven";
        assert_eq!(found(&format!("call {phone}. I will"))[0].1, phone);
        for t in [
            "one point five, then two point five",
            "a plate and six screws, then one, two, three",
            "her platelets were one fifty",
            "polka dot dress",
            "squamous cell carcinoma, staged T two N zero M zero",
            "Called cath lab: ST elevation in V two, V three, V four",
            "anterior plate spanning C five C six C seven",
            "a plate and screws: T two N zero M zero",
            "her inr was one point two one point three one point four",
            "TB pt on DOT health dept",
        ] {
            assert!(found(t).is_empty(), "{t}: {:?}", found(t));
        }
    }

    #[test]
    fn e_mail_read_out_streets_and_bare_phone_numbers() {
        assert_eq!(
            found("it's j dot smith at gmail dot com")[0],
            (Category::Email, "j dot smith at gmail dot com".into())
        );
        assert_eq!(found("I live at four twelve elm street")[0], (Category::Location, "four twelve elm street".into()));
        assert!(found("five minutes down the road").is_empty());
        assert_eq!(found("we'll call 2535550101 then")[0], (Category::Phone, "2535550101".into()));
        assert!(found("ref 12535550101 and 1234567890").is_empty());
    }
}
