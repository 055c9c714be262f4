//! Identifiers with a shape of their own: e-mail, URL, IP address, telephone and fax numbers,
//! SSN, Chinese resident ID and licence plates, labelled record/plan/account/licence/device
//! numbers, and ages over 89.

use regex::Captures;

use super::detect::Span;
use super::lexicon::{captures, matches, regex, Pattern};
use super::Category;

regex!(EMAIL = r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b");
regex!(URL = r#"(?i)\b(?:(?:https?|ftp)://|www\.)[^\s<>"'，。；、（）【】]+"#);
regex!(
    DOMAIN = r"(?i)\b[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:com|org|net|edu|gov|io|info|biz|cn|uk|ca|au|de|fr|jp|us|health)(?:/[A-Za-z0-9/._~%?=&#-]*)?\b"
);
regex!(IPV4 = r"\b(?:\d{1,3}\.){3}\d{1,3}\b");
regex!(IPV6 = r"(?i)\b[0-9a-f]{1,4}(?::{1,2}[0-9a-f]{1,4}){2,7}(?:::)?");
regex!(SSN = r"\b\d{3}-\d{2}-\d{4}\b");
// North American numbers: (617) 555-0142, 617-555-0142, +1 617 555 0142, with an extension.
regex!(
    PHONE_NANP = r"(?:\+1[ .-]?|\b1[ .-])?(?:\(\d{3}\)[ .-]?|\b\d{3}[ .-])\d{3}[ .-]\d{4}\b(?:[ ]*(?:ext\.?|x|extension)[ ]*\d{1,5}\b)?"
);
// International form with a country code: +44 20 7946 0958, +86 135 6421 7788.
regex!(PHONE_INTL = r"\+\d{1,3}(?:[ .-]?\(?\d{1,5}\)?){2,5}\b");
// Hong Kong's and Singapore's eight digits, four and four ("9123 4567"), in notes from there.
regex!(PHONE_HK_SG = r"\b[3689]\d{3}[ -]?\d{4}\b");
regex!(HK_SG_NOTE = r"\+65|\+852|(?i:\b(?:HKID|NRIC|singapore|hong kong|kowloon)\b)|香港|九龍|九龙|新加坡");
// National numbers with a trunk 0 and separators: 07700 900461, 0571-87654321, 028-85501234.
regex!(PHONE_TRUNK = r"\b0\d{1,4}[ -]\d{3,4}(?:[ -]?\d{3,4})?\b");
// A telephone extension said alone ("my work voicemail, extension 4410"): four to six digits,
// so that "knee extension 120" stays a reading.
regex!(PHONE_EXTENSION = r"\b(?:[Ee]xtension|[Ee]xt\.?|[Pp]gr|[Pp]ager|[Bb]leep|[Ll]ocal)[ \t]*(?:#|number|no\.?)?[ \t]*(\d{4,6})\b");
// Chinese mobile numbers: 13812345678, 139 2233 4455, 186-0211-3344.
regex!(PHONE_CN_MOBILE = r"(?:\+86[ -]?|\b86[ -]|\b)1[3-9]\d(?:[ -]?\d{4}){2}\b");
regex!(
    PHONE_LABELLED = r"(?i)(?:\b(?:tel|telephone|phone|cell|cellphone|mobile|mob|pager|beeper|bleep|fax|facsimile|contact number|contact no)\b|电话|手机|手机号|联系电话|联系方式|传真|座机|电话号码)[ \t\x{3000}]*(?:number|no\.?|#)?[ \t\x{3000}]*[:：#]?[ \t\x{3000}]*(?:is[ \t\x{3000}]+)?(\+?\(?\d[\d ().-]{2,18}\d)"
);
regex!(CN_ID = r"\b\d{17}[\dXx]\b");
// Taiwan's national ID (a letter, 1 or 2 for the sex, eight digits; checked) and Malaysia's
// MyKad number (YYMMDD-PB-NNNG, the birth date checked).
// An NPI said a few words before its ten digits ("our NPI for the paperwork is 1467582039").
regex!(NPI_NEAR = r"(?i)\bNPI\b[^\n\d]{0,60}?\b(\d{10})\b");
regex!(TW_ID = r"\b[A-Z][12]\d{8}\b");
regex!(MY_IC = r"\b(\d{6})-\d{2}-\d{4}\b");
// A South African identity number: birth date, four digits, citizenship, 8 or 9, a Luhn check
// digit; written whole or as 6 4 3 ("550917 6221 088").
regex!(ZA_ID = r"\b\d{6} ?\d{4} ?\d{3}\b");
regex!(
    CN_PLATE = r"[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼][A-HJ-NP-Z][·•]?[A-HJ-NP-Z0-9]{5,6}\b"
);
regex!(VIN = r"\b[A-HJ-NPR-Z0-9]{17}\b");
regex!(
    AGE_EN = r"(?i)\b(\d{2,3})(?:[- ]?(?:years?|yrs?|y)[- ]?(?:old|o)\b|[- ]?y/o\b|[- ]?y\.o\.|[- ]?yo\b| years? of age\b)|\b(?:age|aged|umur|usia|edad)\b[ \t\x{3000}]*[:：]?[ \t\x{3000}]*(\d{2,3})\b|\b(\d{2,3})[ \t]*(?:tahun|años|anos|taong gulang)\b"
);
regex!(
    AGE_EN_WORDS = r"(?i)\b((?:ninety|one hundred)(?:[- ](?:and[- ])?(?:one|two|three|four|five|six|seven|eight|nine))?)[- ](?:years?[- ]old|year-old)"
);
// An age over 89 in digits after a person and a verb that make it one, at a clause's end:
// "Mrs. Lindqvist is 96, correct?", "she's 93 and still drives" (not "she was 94 on room air").
regex!(
    AGE_EN_CUED = r"\b(?:[Ss]he['’]s|[Hh]e['’]s|[Ss]he is|[Hh]e is|[Ss]he was|[Hh]e was|[Ww]ho['’]s|[Ww]ho is|turned|turns|turning|(?:Mrs?|Ms|Miss)\.? [A-Z][a-z]+ is) (?:about |almost |nearly |now |just |only )?(9\d|1[01]\d)(?:[,;!?)]|\.(?:\s|$)|$| (?:and|now|this|next|last|today|but|so|years?|yo)\b)"
);
regex!(
    AGE_ZH = r"(\d{2,3})[ \t\x{3000}]*(?:岁|周岁)|(?:年龄|享年|终年|今年)[ \t\x{3000}]*[:：]?[ \t\x{3000}]*(\d{2,3})|((?:九十|一百)[零一二三四五六七八九十]?)(?:岁|周岁)"
);

// A WeChat ID after its label: a letter, then 5 to 19 letters, digits, "_" or "-".
regex!(WECHAT = r"(?:微信号?|(?i:\bwechat(?:[ \t]+id)?))[ \t\x{3000}]*(?:是|[:：])?[ \t\x{3000}]*([A-Za-z][A-Za-z0-9_-]{5,19})\b");

/// A labelled-identifier rule: what the label announces, and the label itself.
struct Labelled {
    cat: Category,
    conf: f32,
    label: &'static Pattern,
}

// Labels end at a word boundary; "number", "no.", "#", ":" and "is" after them are skipped
// by `labelled_value`, so the patterns need not spell them out.
regex!(
    LABEL_MRN = r"(?i)\b(?:MRN|MR (?:no|number)|medical record(?: number| no)?|med(?:ical)? rec(?:ord)? no|hosp(?:ital)? (?:no|number|id)|unit (?:no|number)|(?-i:UR)(?: (?:no|number))?|chart (?:no|number)|patient (?:id|no|number)|pt id|record (?:no|number))\b|(?i)\b(?:MR|hosp(?:ital)?|chart|patient|pt|record) ?#|病历号|病案号|住院号|门诊号|就诊号|就诊卡号|登记号|病人ID|患者ID|ID号|档案号|病历编号|住院编号"
);
regex!(
    LABEL_PLAN = r"(?i)\b(?:health ?plan(?: beneficiary)?(?: id| number| no)?|insurance(?: id| number| no| card)?|member (?:id|number|no)|subscriber (?:id|number|no)|policy (?:id|number|no)|group (?:number|no)|medicare(?: id| number| no)?|medicaid(?: id| number| no)?|nhs (?:number|no)|beneficiary (?:id|number|no)|NHI (?:card|number|no)|BPJS(?: Kesehatan)?|RAMQ|OHIP|medical aid(?: number| no)?)\b|(?i)\b(?:member|policy|group|subscriber) ?#|健保卡号|健保号|医保卡号|医保号|医保卡|医保编号|社保卡号|社保号|社会保障卡号|新农合(?:卡号|号)?|参保号|保险单号|保单号|合作医疗证号"
);
regex!(
    LABEL_ACCOUNT = r"(?i)\b(?:account|acct|billing|invoice|bank account|routing)(?: (?:id|number|no))?\b|(?i)\ba/c ?#?|账号|账户|银行卡号|缴费号|结算号|发票号"
);
regex!(LABEL_CARD = r"卡号");
regex!(
    LABEL_LICENSE = r"(?i)\b(?:licen[cs]e|lic|certificate|cert|registration|board certification|permit|DEA|NPI|GMC|CLIA|NMC|UPIN|MCR|MMC|APC|AHPRA|HPCSA|SANC|CMQ|(?-i:STR|SIP)|provider|prescriber|driver|driving licen[cs]e)(?: (?:id|number|no))?\b|执业证书?(?:编码|编号|号)?|资格证书?(?:编码|编号|号)?|医师证号|证书编号|执业编号|驾驶证号?|驾照号?"
);
regex!(
    LABEL_VEHICLE = r"(?i)\b(?:VIN|vehicle identification(?: number)?|licen[cs]e plate|plate(?: number| no)?|registration plate|tag number|vehicle reg(?:istration)?|car reg(?:istration)?|rego|vehicle)\b|(?-i:\b[A-Z]{2} reg\b)|车牌号?码?|车架号|车辆识别代号"
);
regex!(
    LABEL_DEVICE = r"(?i)\b(?:serial(?: id| number| no)?|s/n|SN|device (?:id|identifier|serial|number)|UDI|lot(?: number| no)?|implant id|IMEI|pacemaker id)\b|序列号|设备编号|设备号|植入物编号|批号|产品编号"
);
regex!(
    LABEL_OTHER = r"(?i)\b(?:accession|case|specimen|sample|requisition|employee|staff|student|identification|barcode|badge|fin|csn)\b|(?i)\b(?:acc|lab|order|reference|ref|claim|tracking|study|encounter|visit|client|prescription|script|rx|job|dictation) ?(?:id\b|number\b|no\b|#)|\bID\b|检查号|影像号|病理号|标本号|检验号|样本号|条形码|工号|学号|编号|单号|流水号|预约号|申请单号|报告编号|超声号|心电图号|放射号|CT号|MR号|X线号"
);
regex!(
    LABEL_ID_NUMBER = r"(?i)\b(?:passport|ID card|national id|identity card|HKID|NRIC|FIN|pension card|concession card|centrelink(?: card)?|CRN|MyKad|(?-i:NIK|KTP|NIN))(?: (?:number|no))?\b|身份证(?:号码|号)?|身分证(?:字号|号码|号)?|居留证(?:号码|号)?|公民身份号码|证件号码?|护照号?码?"
);
regex!(LABEL_SSN = r"(?i)\b(?:SSN|social security(?: number| no)?|social insurance number|SIN)\b|(?i)\bSS ?#");

static LABELLED: [Labelled; 10] = [
    Labelled { cat: Category::MedicalRecord, conf: 0.95, label: &LABEL_MRN },
    Labelled { cat: Category::HealthPlan, conf: 0.95, label: &LABEL_PLAN },
    Labelled { cat: Category::Account, conf: 0.93, label: &LABEL_ACCOUNT },
    Labelled { cat: Category::Account, conf: 0.85, label: &LABEL_CARD },
    Labelled { cat: Category::License, conf: 0.93, label: &LABEL_LICENSE },
    Labelled { cat: Category::Vehicle, conf: 0.96, label: &LABEL_VEHICLE },
    Labelled { cat: Category::Device, conf: 0.93, label: &LABEL_DEVICE },
    Labelled { cat: Category::Other, conf: 0.88, label: &LABEL_OTHER },
    Labelled { cat: Category::IdNumber, conf: 0.95, label: &LABEL_ID_NUMBER },
    Labelled { cat: Category::Ssn, conf: 0.97, label: &LABEL_SSN },
];

/// Adds every patterned identifier in `text` to `out`.
pub(crate) fn find(text: &str, out: &mut Vec<Span>) {
    let each = |re: &'static Pattern| matches(re, text);
    for m in each(&EMAIL) {
        out.push(Span::new(Category::Email, m.start(), m.end(), 0.99));
    }
    for m in each(&URL) {
        let end = m.start() + trim_trailing(m.as_str()).len();
        out.push(Span::new(Category::Url, m.start(), end, 0.97));
    }
    for m in each(&DOMAIN) {
        // A bare domain needs a letter before its dot, so "3.5.cn"-like numbers never match.
        if m.as_str().split('.').next().is_some_and(|h| h.chars().any(|c| c.is_ascii_alphabetic())) {
            let end = m.start() + trim_trailing(m.as_str()).len();
            out.push(Span::new(Category::Url, m.start(), end, 0.8));
        }
    }
    for m in each(&IPV4) {
        let octets_ok = m.as_str().split('.').all(|o| o.parse::<u16>().is_ok_and(|v| v <= 255));
        if octets_ok && !dotted_neighbour(text, m.start(), m.end()) {
            out.push(Span::new(Category::IpAddress, m.start(), m.end(), 0.95));
        }
    }
    for m in each(&IPV6) {
        // Times (14:30:00) have neither hex letters nor "::"; an address has eight groups, or
        // "::" once and a hex letter or three groups.
        let s = m.as_str();
        let compressed = s.matches("::").count();
        let groups = s.split(':').filter(|g| !g.is_empty()).count();
        let hex_letter = s.chars().any(|c| c.is_ascii_alphabetic());
        if (groups == 8 && compressed == 0 || compressed == 1 && (hex_letter || groups >= 3))
            && !digit_neighbour(text, m.start(), m.end())
        {
            out.push(Span::new(Category::IpAddress, m.start(), m.end(), 0.9));
        }
    }
    for m in each(&SSN) {
        if !digit_neighbour(text, m.start(), m.end()) {
            out.push(Span::new(Category::Ssn, m.start(), m.end(), 0.85));
        }
    }
    for c in captures(&WECHAT, text) {
        if let Some(id) = c.get(1) {
            out.push(Span::new(Category::IdNumber, id.start(), id.end(), 0.9));
        }
    }
    find_phones(text, out);
    for m in each(&CN_ID) {
        if resident_id_is_valid(m.as_str()) {
            out.push(Span::new(Category::IdNumber, m.start(), m.end(), 0.97));
        }
    }
    for c in captures(&NPI_NEAR, text) {
        if let Some(n) = c.get(1) {
            out.push(Span::new(Category::License, n.start(), n.end(), 0.9));
        }
    }
    for m in each(&TW_ID) {
        if taiwan_id_is_valid(m.as_str()) {
            out.push(Span::new(Category::IdNumber, m.start(), m.end(), 0.95));
        }
    }
    for c in captures(&MY_IC, text) {
        let (Some(m), Some(birth)) = (c.get(0), c.get(1)) else { continue };
        if yymmdd_exists(birth.as_str()) && !digit_neighbour(text, m.start(), m.end()) {
            out.push(Span::new(Category::IdNumber, m.start(), m.end(), 0.93));
        }
    }
    for m in each(&ZA_ID) {
        if za_id_is_valid(&m.as_str().replace(' ', "")) && !digit_neighbour(text, m.start(), m.end()) {
            out.push(Span::new(Category::IdNumber, m.start(), m.end(), 0.93));
        }
    }
    for m in each(&CN_PLATE) {
        if m.as_str().chars().filter(char::is_ascii_digit).count() >= 3 {
            out.push(Span::new(Category::Vehicle, m.start(), m.end(), 0.85));
        }
    }
    for m in each(&VIN) {
        let s = m.as_str();
        let digits = s.chars().filter(char::is_ascii_digit).count();
        if digits >= 3 && s.len() - digits >= 3 {
            out.push(Span::new(Category::Vehicle, m.start(), m.end(), 0.75));
        }
    }
    for rule in &LABELLED {
        for m in matches(rule.label, text) {
            if let Some((start, end)) = labelled_value(text, m.end()) {
                let mut conf = rule.conf;
                if rule.cat == Category::IdNumber {
                    // A labelled ID that fails its checksum is still somebody's number, mistyped.
                    let v = &text[start..end];
                    if v.len() == 18 && !resident_id_is_valid(v) {
                        conf = 0.7;
                    }
                }
                out.push(Span::new(rule.cat, start, end, conf));
            }
        }
    }
    find_ages(text, out);
}

fn find_phones(text: &str, out: &mut Vec<Span>) {
    let mut push = |start: usize, end: usize, conf: f32| {
        let raw = &text[start..end];
        let digits = raw.chars().filter(char::is_ascii_digit).count();
        if digits < 4 || digit_neighbour(text, start, end) {
            return;
        }
        out.push(Span::new(phone_or_fax(text, start), start, end, conf));
    };
    for (re, conf) in [(&PHONE_NANP, 0.9), (&PHONE_INTL, 0.9), (&PHONE_TRUNK, 0.75), (&PHONE_CN_MOBILE, 0.92)] {
        for m in matches(re, text) {
            let digits = m.as_str().chars().filter(char::is_ascii_digit).count();
            if (7..=15).contains(&digits) {
                push(m.start(), m.end(), conf);
            }
        }
    }
    if HK_SG_NOTE.as_ref().is_some_and(|r| r.is_match(text)) {
        for m in matches(&PHONE_HK_SG, text) {
            push(m.start(), m.end(), 0.8);
        }
    }
    for c in captures(&PHONE_EXTENSION, text) {
        // Not a quantity: "IV fluid extension 1200 mL", "Ext 2500 IU", "extension 2024 of".
        let word_after = |end: usize| text[end..].trim_start_matches([' ', '\t']).starts_with(|c: char| c.is_alphanumeric());
        if let Some(m) = c.get(1).filter(|m| !word_after(m.end())) {
            push(m.start(), m.end(), 0.8);
        }
    }
    for c in captures(&PHONE_LABELLED, text) {
        if let Some(m) = c.get(1) {
            let s = m.as_str();
            let trimmed = s.trim_end_matches([' ', '.', '-', '(']);
            // "Tel: (831) 555-0107  Fax" must not swallow a time or a dose after the number.
            if !trimmed.contains(':') {
                push(m.start(), m.start() + trimmed.len(), 0.93);
            }
        }
    }
}

/// FAX when "fax" or 传真 comes shortly before the number, else PHONE.
fn phone_or_fax(text: &str, start: usize) -> Category {
    let mut from = start.saturating_sub(16);
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    let before = text[from..start].to_lowercase();
    let fax = before.rfind("fax").or_else(|| before.rfind("传真"));
    let tel = ["tel", "phone", "cell", "mobile", "电话", "手机"].iter().filter_map(|w| before.rfind(w)).max();
    match (fax, tel) {
        (Some(f), Some(t)) if t > f => Category::Phone,
        (Some(_), _) => Category::Fax,
        _ => Category::Phone,
    }
}

/// The value after an identifier's label, as a byte range: it skips punctuation and filler
/// words ("number", "is", "still"), then takes space-separated groups that carry digits
/// ("485 777 3456", "PJN 884231 H"). At least three digits in all.
fn labelled_value(text: &str, label_end: usize) -> Option<(usize, usize)> {
    const FILLERS: [&str; 14] =
        ["number", "no", "no.", "num", "nr", "#", "is", "was", "still", "id", "code", "of", "the", "are"];
    let rest = text.get(label_end..)?;
    // The label must end a word ("case" is not "cases").
    if rest.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text[..label_end].ends_with(|c: char| c.is_ascii_alphabetic())
    {
        return None;
    }
    let mut pos = label_end;
    let mut skipped_words = 0;
    loop {
        let r = &text[pos..];
        let trimmed = r.trim_start_matches([' ', '\t', ':', '：', '#', '=', '.', '-', '　']);
        // 病历号码：0038472916: the "码" of a label's longer form.
        let trimmed = trimmed.strip_prefix("码").map_or(trimmed, |t| t.trim_start_matches([' ', ':', '：', '　']));
        // 住院号是ZY20231047: a Chinese "is" between label and value.
        let trimmed = trimmed.strip_prefix("是").or_else(|| trimmed.strip_prefix("为")).unwrap_or(trimmed);
        pos += r.len() - trimmed.len();
        let word_len = trimmed.find(|c: char| c.is_whitespace() || c == ':' || c == '：').unwrap_or(trimmed.len());
        let word = trimmed[..word_len].to_ascii_lowercase();
        if skipped_words < 3 && FILLERS.contains(&word.as_str()) {
            pos += word_len;
            skipped_words += 1;
            continue;
        }
        break;
    }
    let value_start = pos;
    let bytes = text.as_bytes();
    let mut end = pos;
    let mut groups = 0;
    let mut digits = 0;
    loop {
        // One group: alphanumerics joined by - / .
        let mut i = end;
        while i < bytes.len()
            && (bytes[i].is_ascii_alphanumeric()
                || (matches!(bytes[i], b'-' | b'/' | b'.')
                    && i + 1 < bytes.len()
                    && bytes[i + 1].is_ascii_alphanumeric()
                    && i > end))
        {
            i += 1;
        }
        if i == end {
            break;
        }
        let group = &text[end..i];
        let group_digits = group.bytes().filter(u8::is_ascii_digit).count();
        let short_caps = group.len() <= 4 && group.bytes().all(|b| b.is_ascii_uppercase());
        let accept = if groups == 0 {
            group_digits > 0 || short_caps
        } else {
            group_digits > 0 || (short_caps && group.len() <= 3 && digits > 0)
        };
        if !accept {
            break;
        }
        digits += group_digits;
        groups += 1;
        end = i;
        // A single space may join the next group; anything else ends the value.
        if groups < 5 && bytes.get(end) == Some(&b' ') && bytes.get(end + 1).is_some_and(u8::is_ascii_alphanumeric) {
            let next_end = (end + 1..bytes.len()).find(|&j| !bytes[j].is_ascii_alphanumeric()).unwrap_or(bytes.len());
            let next = &text[end + 1..next_end];
            let next_ok = next.bytes().any(|b| b.is_ascii_digit())
                || (next.len() <= 3 && next.bytes().all(|b| b.is_ascii_uppercase()));
            if next_ok {
                end += 1;
                continue;
            }
        }
        break;
    }
    // A check character in brackets belongs to the number: HKID "K482913(1)", "HN19027733(4)".
    let check = text.as_bytes().get(end..end + 3);
    if check.is_some_and(|c| c[0] == b'(' && c[1].is_ascii_alphanumeric() && c[2] == b')') {
        end += 3;
    }
    // A trailing capital group without digits after the value is kept only when it was joined
    // to digits ("884231 H"); a leading one needs digits after it ("MDC 447").
    if digits < 3 || end <= value_start {
        return None;
    }
    Some((value_start, end))
}

fn find_ages(text: &str, out: &mut Vec<Span>) {
    let mut push = |c: &Captures, conf: f32| {
        for g in 1..c.len() {
            if let Some(m) = c.get(g) {
                let value = m.as_str().parse::<u32>().ok().or_else(|| chinese_number(m.as_str()));
                if value.is_some_and(|v| (90..=130).contains(&v)) {
                    out.push(Span::new(Category::Age, m.start(), m.end(), conf));
                }
            }
        }
    };
    for re in [&AGE_EN, &AGE_ZH] {
        for c in captures(re, text) {
            push(&c, 0.9);
        }
    }
    for c in captures(&AGE_EN_CUED, text) {
        if let Some(m) = c.get(1) {
            out.push(Span::new(Category::Age, m.start(), m.end(), 0.8));
        }
    }
    for c in captures(&AGE_EN_WORDS, text) {
        if let Some(m) = c.get(1) {
            out.push(Span::new(Category::Age, m.start(), m.end(), 0.85));
        }
    }
}

/// The value of a Chinese numeral up to 199 (九十二 → 92, 一百零三 → 103).
pub(crate) fn chinese_number(s: &str) -> Option<u32> {
    let digit =
        |c: char| "〇一二三四五六七八九".chars().position(|d| d == c).map(|d| d as u32).or((c == '零').then_some(0));
    let chars: Vec<char> = s.chars().collect();
    match chars.as_slice() {
        [] => None,
        ['十'] => Some(10),
        ['十', d] => Some(10 + digit(*d)?),
        [t, '十'] => Some(digit(*t)? * 10),
        [t, '十', d] => Some(digit(*t)? * 10 + digit(*d)?),
        ['一', '百', rest @ ..] => {
            let tail: String = rest.iter().filter(|&&c| c != '零').collect();
            Some(100 + if tail.is_empty() { 0 } else { chinese_number(&tail)? })
        }
        [d] => digit(*d),
        _ => None,
    }
}

/// Does a Chinese resident ID number (18 characters) carry a valid birth date and ISO 7064
/// MOD 11-2 check character?
/// Taiwan's ID check: the letter's two-digit code (A = 10 … Z = 33, in Taiwan's own order),
/// weights 1, 9, 8 … 1 over its digits and the nine that follow, a multiple of 10.
pub(crate) fn taiwan_id_is_valid(id: &str) -> bool {
    const LETTERS: &[u8; 26] = b"ABCDEFGHJKLMNPQRSTUVXYWZIO";
    let b = id.as_bytes();
    let Some(code) = b.first().and_then(|l| LETTERS.iter().position(|x| x == l)).map(|i| i as u32 + 10) else { return false };
    if b.len() != 10 || !b[1..].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let digits = b[1..].iter().map(|d| u32::from(d - b'0'));
    let weights = [8, 7, 6, 5, 4, 3, 2, 1, 1];
    let sum = code / 10 + (code % 10) * 9 + digits.zip(weights).map(|(d, w)| d * w).sum::<u32>();
    sum % 10 == 0
}

/// A South African identity number: 13 digits, a birth date that exists (either century), a
/// citizenship digit of 0 or 1, and a Luhn check digit.
pub(crate) fn za_id_is_valid(id: &str) -> bool {
    let b = id.as_bytes();
    if b.len() != 13 || !b.iter().all(u8::is_ascii_digit) || !matches!(b[10], b'0' | b'1') {
        return false;
    }
    let luhn: u32 = b.iter().rev().enumerate().map(|(i, &c)| {
        let v = u32::from(c - b'0') * if i % 2 == 1 { 2 } else { 1 };
        v / 10 + v % 10
    }).sum();
    yymmdd_exists(&id[..6]) && luhn % 10 == 0
}

/// Is `yymmdd` (six digits) a date that exists in 19YY or 20YY, as a birth date in an identity
/// number (MyKad, South African ID) is?
fn yymmdd_exists(yymmdd: &str) -> bool {
    let ymd: u32 = yymmdd.parse().unwrap_or(0);
    let (y, m, d) = (ymd / 10000, ymd / 100 % 100, ymd % 100);
    [1900, 2000].iter().any(|c| (1..=12).contains(&m) && d >= 1 && d <= super::dates::days_in_month((c + y) as i32, m))
}

pub(crate) fn resident_id_is_valid(id: &str) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let b = id.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = b[..17].iter().zip(WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
    let birth_ok = id[6..14].parse::<u32>().is_ok_and(|ymd| {
        let (y, m, d) = (ymd / 10000, ymd / 100 % 100, ymd % 100);
        (1880..=2100).contains(&y) && (1..=12).contains(&m) && d >= 1 && d <= super::dates::days_in_month(y as i32, m)
    });
    birth_ok && CHECK[(sum % 11) as usize] == b[17].to_ascii_uppercase()
}

fn trim_trailing(s: &str) -> &str {
    s.trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']', '\'', '"'])
}

/// Is the match glued to more digits (part of a longer number)?
fn digit_neighbour(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    before.is_some_and(|c| c.is_ascii_digit() || c == '-' && text[..start - 1].ends_with(|c: char| c.is_ascii_digit()))
        || after.is_some_and(|c| c.is_ascii_digit())
}

/// Is the match part of a longer dotted number (1.2.3.4.5)?
fn dotted_neighbour(text: &str, start: usize, end: usize) -> bool {
    text[..start].ends_with('.') && text[..start - 1].ends_with(|c: char| c.is_ascii_digit())
        || text[end..].starts_with('.') && text[end + 1..].starts_with(|c: char| c.is_ascii_digit())
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
            &EMAIL,
            &URL,
            &DOMAIN,
            &IPV4,
            &IPV6,
            &SSN,
            &PHONE_NANP,
            &PHONE_INTL,
            &PHONE_TRUNK,
            &PHONE_EXTENSION,
            &WECHAT,
            &PHONE_HK_SG,
            &HK_SG_NOTE,
            &PHONE_CN_MOBILE,
            &PHONE_LABELLED,
            &CN_ID,
            &TW_ID,
            &MY_IC,
            &ZA_ID,
            &NPI_NEAR,
            &CN_PLATE,
            &VIN,
            &AGE_EN,
            &AGE_EN_WORDS,
            &AGE_EN_CUED,
            &AGE_ZH,
        ] {
            assert!(re.is_some());
        }
        for rule in &LABELLED {
            assert!(rule.label.is_some());
        }
    }

    #[test]
    fn south_african_identity_numbers_need_a_birth_date_and_their_check_digit() {
        assert!(za_id_is_valid("5509176221088") && za_id_is_valid("8001015009087"));
        // One digit changed, a 13th month, a citizenship digit of 2.
        assert!(!za_id_is_valid("5509176221089") && !za_id_is_valid("5513176221088") && !za_id_is_valid("5509176221288"));
        let f = found("ID number? 550917 6221 088. Also 5509176221088, not 5509176221089.");
        assert_eq!(f.iter().filter(|(c, _)| *c == Category::IdNumber).count(), 2, "{f:?}");
    }

    #[test]
    fn resident_id_checksum_is_checked() {
        assert!(resident_id_is_valid("11010519491231002X"));
        // Taiwan's example A123456789 is valid; one digit changed is not.
        assert!(taiwan_id_is_valid("A123456789") && !taiwan_id_is_valid("A123456788"));
        // Letters whose codes are out of alphabetical order: W 32, X 30, Y 31, Z 33, I 34, O 35.
        for id in ["W100000001", "X100000009", "Y100000000", "Z100000002", "I100000003", "O100000004"] {
            assert!(taiwan_id_is_valid(id), "{id}");
        }
        assert!(found("IC 2.85 L, FEV1 2.1 L").is_empty());
        assert_eq!(found("ID F131104093, tel"), vec![(Category::IdNumber, "F131104093".into())]);
        assert_eq!(found("IC 520318-07-5523 male"), vec![(Category::IdNumber, "520318-07-5523".into())]);
        assert!(found("ratio 521399-07-5523").is_empty());
        assert_eq!(found("健保卡號: 000012478835"), vec![(Category::HealthPlan, "000012478835".into())]);
        assert_eq!(found("Our NPI for the request paperwork is 1467582039."), vec![(Category::License, "1467582039".into())]);
        assert_eq!(found("Job #: 7720154"), vec![(Category::Other, "7720154".into())]);
        assert_eq!(found("MMC No. 61437"), vec![(Category::License, "61437".into())]);
        assert!(resident_id_is_valid("110105198803153414"));
        assert!(!resident_id_is_valid("110105198803153415"));
        assert!(!resident_id_is_valid("110105198813153416"));
        assert_eq!(found("身份证号码 11010519491231002X。"), vec![(Category::IdNumber, "11010519491231002X".into())]);
        assert!(found("编码 110105198803153415 结束").iter().all(|(c, _)| *c != Category::IdNumber));
    }

    #[test]
    fn phones_faxes_and_contacts() {
        let f = found("Tel (831) 555-0107  Fax (831) 555-0110, mail a.b@c.org, see https://x.org/a.");
        assert_eq!(f[0], (Category::Phone, "(831) 555-0107".into()));
        assert_eq!(f[1], (Category::Fax, "(831) 555-0110".into()));
        assert_eq!(f[2], (Category::Email, "a.b@c.org".into()));
        assert_eq!(f[3], (Category::Url, "https://x.org/a".into()));
        assert_eq!(found("手机139 2233 4455，座机0571-87654321")[1].1, "0571-87654321");
    }

    #[test]
    fn labelled_values_take_grouped_digits_and_stop_at_words() {
        assert_eq!(found("NHS number: 485 777 3456 today"), vec![(Category::HealthPlan, "485 777 3456".into())]);
        assert_eq!(found("serial no. PJN 884231 H) was"), vec![(Category::Device, "PJN 884231 H".into())]);
        assert_eq!(
            found("Medicaid ID is still MDC 447 210 933?"),
            vec![(Category::HealthPlan, "MDC 447 210 933".into())]
        );
        assert!(found("Plan: 1. Admit. Case 2 of 5. ID consult.").is_empty());
        assert_eq!(found("您的住院号是ZY20231047，对吗"), vec![(Category::MedicalRecord, "ZY20231047".into())]);
        assert_eq!(found("病历号码：0038472916　床号"), vec![(Category::MedicalRecord, "0038472916".into())]);
        let f = found("NIK: 3171065402960003   BPJS Kesehatan: 0001847392016\nRAMQ: TREG 8553 1512. SIP 503/2024/IPD/0417; a sip 250 ml");
        assert_eq!(
            f,
            vec![
                (Category::IdNumber, "3171065402960003".into()),
                (Category::HealthPlan, "0001847392016".into()),
                (Category::HealthPlan, "TREG 8553 1512".into()),
                (Category::License, "503/2024/IPD/0417".into())
            ]
        );
        assert_eq!(found("prescription number RX 6640917. It"), vec![(Category::Other, "RX 6640917".into())]);
        assert_eq!(found("78F  hosp no 00482913\n"), vec![(Category::MedicalRecord, "00482913".into())]);
        assert_eq!(found("74 y/o, UR 3402288\n"), vec![(Category::MedicalRecord, "3402288".into())]);
        assert_eq!(found("HKID: K482913(1)    Sex"), vec![(Category::IdNumber, "K482913(1)".into())]);
        assert_eq!(found("pension card no 412 889 705K in chart"), vec![(Category::IdNumber, "412 889 705K".into())]);
        assert_eq!(found("妈妈微信号：zhouliping_1975，有事"), vec![(Category::IdNumber, "zhouliping_1975".into())]);
        assert!(found("ur 3 kids are fine").is_empty());
        assert_eq!(found("blue 2016 Civic, MA reg 4TLW 88, towed"), vec![(Category::Vehicle, "4TLW 88".into())]);
        assert_eq!(found("taxi driver (vehicle SHB 4471 S), T2DM"), vec![(Category::Vehicle, "SHB 4471 S".into())]);
        assert!(found("vehicle was totalled; the vehicle 2 doors").is_empty());
        // Eight-digit numbers are phones in notes from Hong Kong or Singapore only.
        let hk = "HKID: K482913(1)\nTel: 9123 4567 (self); 6789 0123 (son)";
        assert_eq!(found(hk)[1..], [(Category::Phone, "9123 4567".into()), (Category::Phone, "6789 0123".into())]);
        assert!(found("WBC 9123 4567 cells").is_empty());
    }

    #[test]
    fn an_extension_said_alone_is_a_phone_number_but_a_reading_is_not() {
        assert_eq!(found("my work voicemail, extension 4410, but"), vec![(Category::Phone, "4410".into())]);
        assert!(found("knee extension 120 degrees; ext. 30").is_empty());
        assert!(found("IV fluid extension 1200 mL. Ext 2500 IU daily; extension 2024 of the trial.").is_empty());
    }

    #[test]
    fn only_ages_over_89_are_identifiers() {
        assert_eq!(found("a 92-year-old and a 67-year-old"), vec![(Category::Age, "92".into())]);
        assert_eq!(
            found("年龄：95岁；另一位65岁；九十三岁"),
            vec![(Category::Age, "95".into()), (Category::Age, "九十三".into())]
        );
        let ages = |t: &str| found(t).into_iter().filter(|(c, _)| *c == Category::Age).map(|(_, s)| s).collect::<Vec<_>>();
        assert_eq!(ages("And Mrs. Lindqvist is 96, correct? She's 93 and drives; he turned 101."), ["96", "93", "101"]);
        for t in ["she was 94 on room air", "he is 98.6 degrees", "Mr. Hale is 95 kg", "she's 88, fine", "SpO2 is 96."] {
            assert!(ages(t).is_empty(), "{t}");
        }
    }

    #[test]
    fn ip_addresses_and_not_versions_or_times() {
        assert_eq!(found("IP 10.42.7.118."), vec![(Category::IpAddress, "10.42.7.118".into())]);
        assert!(found("version 1.2.3.4.5 at 14:30:00, 300.1.1.1").is_empty());
        let v6 = found("host fe80::1ff:fe23:4567:890a up");
        assert_eq!(v6, vec![(Category::IpAddress, "fe80::1ff:fe23:4567:890a".into())]);
    }
}
