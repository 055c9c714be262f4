//! Chinese person names: a family name and one or two given-name characters next to a cue —
//! a label (姓名：, 主治医师：), a word before (患者, 其女儿, 我叫) or a title after (医生, 先生,
//! 阿姨), or "，男，" after. Names found are then looked for again through the note.

use super::detect::Span;
use super::lexicon::{captures, is_han, matches, regex, Pattern, ZH_COMMON_SURNAMES, ZH_GIVEN, ZH_SURNAMES};
use super::Category;

// Labels whose value is a name whatever its characters are.
regex!(
    LABEL_RAW = r"(?:患者姓名|病人姓名|患儿姓名|孕妇姓名|产妇姓名|家属姓名|姓名|医师签名|医生签名|签名|签字|联系人|监护人)[ \t\x{3000}]*[:：][ \t\x{3000}]*"
);
// Labels of forms whose value is normally a name: any label ending in a role (…医师：, 记录员：,
// 检查者：, 联系人：) or a relation.
regex!(
    LABEL_FORM = r"(?:医师|医生|大夫|护士|护师|技师|药师|员|者|人|主刀|术者|一助|二助|三助|助手|审核|丈夫|妻子|父亲|母亲|儿子|女儿|家属)[ \t\x{3000}]*[:：][ \t\x{3000}]*"
);
// Words before a name that say a name follows: relatives, "my name is".
regex!(
    CUE_STRONG = r"(?:其?(?:丈夫|妻子|爱人|老伴|老公|老婆|儿子|女儿|父亲|母亲|爸爸|妈妈|哥哥|姐姐|弟弟|妹妹|孙子|孙女|外孙|外孙女|侄子|侄女|儿媳|女婿|配偶|家人|亲属|朋友|同事)|其(?:妻|夫|子|女|父|母|兄|弟|姐|妹)|[我他她](?:哥哥|姐姐|弟弟|妹妹|爸爸|妈妈|哥|姐|弟|妹|爸|妈|老公|老婆|媳妇|对象)|之子|之女|我叫|他叫|她叫|名叫|叫做|联系人|监护人|陪同人)(?:是|[ \t\x{3000}]*[，,])?[ \t\x{3000}]*"
);
// Words a name often follows: 患者李建国于…
regex!(
    CUE_WEAK = r"(?:患者|病人|患儿|孕妇|产妇|伤者|家属|医生|医师|护士|治疗师|营养师|药剂师|社工|护工|院长|病史陈述者|病史提供者|我是|由|叫)[ \t\x{3000}]*"
);
regex!(
    TITLE_AFTER = r"副主任医师|主任医师|主治医师|住院医师|副教授|护士长|老先生|老太太|医生|医师|大夫|副主任|主任|主治|教授|护士|护师|治疗师|康复师|营养师|药剂师|社工|先生|女士|小姐|姑娘|老师|阿姨|叔叔|大爷|大妈|奶奶|爷爷|同志|师傅|院长|博士|经理|总监|老板|律师|姐|哥"
);
// A nickname, 老 or 小 and a family name (老王, 小张), after a bed (12床 老王), a relative (女儿小林)
// or before the full name in brackets (小张（张雨桐）).
regex!(
    NICKNAME = r"(床[ \t\x{3000}]*|(?:女儿|儿子|老公|老婆|丈夫|妻子|妈妈|爸爸|孙子|孙女|侄子|侄女|同事|朋友)(?:是)?)?([老小])(\p{Han})([ \t\x{3000}]*[（(](\p{Han}{2,4})[）)])?"
);
// A name in Han characters in brackets after one in Latin letters: "CHAN Tai-man (陳大文)".
regex!(HAN_ALIAS = r"\b[A-Z][A-Za-z'-]+(?: [A-Z][A-Za-z'-]+){1,3}[ \t]*[（(](\p{Han}{2,4})[）)]");
regex!(SURNAME_SAID = r"(?:我|他|她|您|患者|病人)姓");
// A nickname said as a name: 叫小翠, 名叫阿强 (小 or 阿 and a given-name character).
regex!(CALLED = r"(?:叫做|名叫|叫)([小阿]\p{Han})(?:[，。,.、；;：:！!？?\s）)]|$)");
regex!(SEX_AFTER = r"[，,][ \t\x{3000}]*[男女][，,性]");

/// Characters that may follow a name without a cue of their own (患者李建国于…, 母亲刘芳体健).
const FOLLOW: &str = "协照顾带送电手联现因于在自诉主男女今昨前近入出来到去就以被已与和及陪述称说讲年岁的是为有无由行查既平反突曾也则都对给将把从向跟同会要能可应需还又再才便仍尚刚正先等之上下家住目病术这那半每各一二两三四五六七八九十拟请告答问表签意不没未否体患系诊现身均亦死故健先女士医护老";
/// Family names common enough, and rare enough as words, to stand with a one-character given name
/// after a cue without a colon.
/// Pairs of given-name characters that are words (患者于一周前: 于 is not a family name here).
const NOT_GIVEN_PAIRS: [&str; 40] = [
    "一周", "一天", "一次", "一般", "一直", "一些", "一侧", "一定", "一样", "一起", "一度", "一切", "一时", "一旦",
    "一致", "一同", "一向", "一线", "一月", "一年", "小时", "小便", "小儿", "小腿", "小腹", "小于", "小孩", "小组",
    "小量", "小结", "小叶", "小肠", "小脑", "小板", "小球", "小片", "小块", "小型", "小心", "小口",
];
const STRONG_SURNAMES: &str = "王李张刘陈杨赵吴周徐孙朱胡郭何罗郑梁谢宋唐许韩冯邓曹彭肖董袁潘蒋蔡杜程苏魏吕丁沈姚卢姜崔谭陆汪范廖贾韦邹秦邱薛闫侯郝龚邵钱孔汤尹黎贺顾赖覃";
/// A character before a family name, with it, makes a word: 主任医师 is not 任 the doctor.
const BLOCKED_BIGRAMS: [&str; 50] = [
    "主任", "责任", "信任", "担任", "兼任", "现任", "前任", "继任", "专任", "上任", "历任", "留任", "就任", "离任",
    "接任", "委任", "胜任", "值班", "病房", "药房", "住房", "乳房", "心房", "对于", "属于", "由于", "关于", "等于",
    "至于", "基于", "用于", "处于", "位于", "终于", "过于", "善于", "主管", "分管", "经管", "同时", "当时", "及时",
    "按时", "平时", "有时", "小时", "临时", "班主", "照顾", "看顾",
];

#[derive(Clone, Copy, PartialEq)]
enum Cue {
    /// After 姓名： — any two to four characters.
    Raw,
    /// After a form's label with a colon.
    Form,
    /// After a word that announces a name (其女儿, 我叫).
    Strong,
    /// After a word a name often follows (患者): stricter about what follows.
    Word,
}

/// Adds Chinese names found next to cues to `found`.
pub(crate) fn find(text: &str, found: &mut Vec<Span>) {
    let each = |re: &'static Pattern| matches(re, text);
    let (single, double) = &*ZH_SURNAMES;
    for (re, cue) in
        [(&LABEL_RAW, Cue::Raw), (&LABEL_FORM, Cue::Form), (&CUE_STRONG, Cue::Strong), (&CUE_WEAK, Cue::Word)]
    {
        for m in each(re) {
            let mut at = m.end();
            while let Some(end) = name_after(text, at, cue) {
                found.push(Span::new(Category::Name, at, end, if cue == Cue::Word { 0.85 } else { 0.92 }));
                // A list of names after a label: 助手：萧然、聂雨桐
                match text[end..].strip_prefix('、') {
                    Some(_) if cue != Cue::Word => at = end + '、'.len_utf8(),
                    _ => break,
                }
            }
        }
    }
    for m in each(&TITLE_AFTER) {
        if let Some(start) = name_before(text, m.start(), true) {
            found.push(Span::new(Category::Name, start, m.start(), 0.88));
        }
    }
    // 我姓王: the family name alone.
    for m in each(&SURNAME_SAID) {
        let Some(c) = text[m.end()..].chars().next() else { continue };
        let next = text[m.end() + c.len_utf8()..].chars().next();
        if ZH_SURNAMES.0.contains(&c) && next.is_none_or(|n| !is_han(n) || "，叫名的".contains(n)) {
            found.push(Span::new(Category::Name, m.end(), m.end() + c.len_utf8(), 0.85));
        }
    }
    for c in captures(&NICKNAME, text) {
        let (Some(prefix), Some(surname)) = (c.get(2), c.get(3)) else { continue };
        let Some(first) = surname.as_str().chars().next() else { continue };
        let bracket = c.get(5).filter(|n| n.as_str().chars().next().is_some_and(|f| single.contains(&f)));
        let after = text[surname.end()..].chars().next();
        // 小苏打 and 小程序 are words: without brackets nothing Han may follow but a verb or 的.
        let ends = after.is_none_or(|a| !is_han(a) || "说的是在也和又".contains(a));
        if !ZH_COMMON_SURNAMES.contains(&first) || !(bracket.is_some() || c.get(1).is_some() && ends) {
            continue;
        }
        found.push(Span::new(Category::Name, prefix.start(), surname.end(), 0.88));
        if let Some(full) = bracket {
            found.push(Span::new(Category::Name, full.start(), full.end(), 0.9));
        }
    }
    for c in captures(&CALLED, text) {
        let Some(m) = c.get(1) else { continue };
        if m.as_str().chars().nth(1).is_some_and(|g| ZH_GIVEN.contains(&g)) {
            found.push(Span::new(Category::Name, m.start(), m.end(), 0.85));
        }
    }
    for c in captures(&HAN_ALIAS, text) {
        let Some(name) = c.get(1) else { continue };
        let first = name.as_str().chars().next();
        let first_two: String = name.as_str().chars().take(2).collect();
        if first.is_some_and(|f| single.contains(&f)) || double.contains(&first_two) {
            found.push(Span::new(Category::Name, name.start(), name.end(), 0.85));
        }
    }
    for m in each(&SEX_AFTER) {
        if let Some(start) = name_before(text, m.start(), false) {
            let before = text[..start].chars().next_back();
            if before.is_none_or(|c| !is_han(c)) {
                found.push(Span::new(Category::Name, start, m.start(), 0.85));
            }
        }
    }
}

/// The end of the name that starts at byte `pos`, if there is one.
fn name_after(text: &str, pos: usize, cue: Cue) -> Option<usize> {
    let chars: Vec<char> = text[pos..].chars().take(6).collect();
    let byte_len = |n: usize| chars[..n].iter().map(|c| c.len_utf8()).sum::<usize>();
    if cue == Cue::Raw {
        let run = chars.iter().take_while(|c| is_han(**c)).count();
        let mut n = run;
        // 姓名：钱阿姨 — a title after the name is not part of it.
        for title in ["先生", "女士", "阿姨", "医生", "医师", "老师"] {
            let t: Vec<char> = title.chars().collect();
            if n >= 3 && chars[n - 2..n] == t[..] {
                n -= 2;
            }
        }
        if (2..=4).contains(&n) && n == run {
            return Some(pos + byte_len(n));
        }
    }
    let (single, double) = &*ZH_SURNAMES;
    let first_two: String = chars.iter().take(2).collect();
    if cue == Cue::Form {
        // A form's field: a short run that starts with a family name and ends the field
        // (赵大海，男 / 罗晓东（肾内科）) is the name, whatever its given-name characters.
        let run = chars.iter().take_while(|c| is_han(**c)).count();
        let field_end = chars.get(run).is_none_or(|c| c.is_whitespace() || "，,（(、；;".contains(*c));
        // 钱阿姨 is a family name and a title: the title rule takes it.
        let titled = run >= 2 && starts_title(&text[pos + byte_len(1)..])
            || run >= 3 && starts_title(&text[pos + byte_len(run - 2)..]);
        let surname = double.contains(&first_two) || chars.first().is_some_and(|c| single.contains(c));
        if (2..=3).contains(&run) && field_end && surname && !titled {
            return Some(pos + byte_len(run));
        }
    }
    let surname_len = if double.contains(&first_two) {
        2
    } else if chars.first().is_some_and(|c| single.contains(c)) {
        1
    } else {
        return None;
    };
    let strong = surname_len == 2 || chars.first().is_some_and(|c| STRONG_SURNAMES.contains(*c));
    for given in [2, 1] {
        let n = surname_len + given;
        if chars.len() < n || !chars[surname_len..n].iter().all(|c| ZH_GIVEN.contains(c)) {
            continue;
        }
        if given == 2 && NOT_GIVEN_PAIRS.contains(&chars[surname_len..n].iter().collect::<String>().as_str()) {
            continue;
        }
        let next = chars.get(n).copied();
        let ends = next.is_none_or(|c| !is_han(c));
        let follows = next.is_some_and(|c| FOLLOW.contains(c)) || starts_title(&text[pos + byte_len(n)..]);
        let ok = match cue {
            Cue::Raw | Cue::Form => ends || follows,
            Cue::Strong => given == 2 || ends || follows,
            // Two given-name characters after a common family name are a name whatever follows.
            Cue::Word => given == 2 && strong || (ends || follows) && (given == 2 || strong),
        };
        if ok {
            return Some(pos + byte_len(n));
        }
    }
    None
}

fn starts_title(s: &str) -> bool {
    TITLE_AFTER.as_ref().is_some_and(|r| r.find(s).is_some_and(|m| m.start() == 0))
}

/// The start of the name that ends at byte `end` (before a title or "，男"), if there is one.
/// With `bare`, a family name alone counts (刘医生, 钱阿姨).
fn name_before(text: &str, end: usize, bare: bool) -> Option<usize> {
    let chars: Vec<char> = text[..end].chars().rev().take(5).collect(); // nearest first
    let (single, double) = &*ZH_SURNAMES;
    let at = |n: usize| chars[..n].iter().map(|c| c.len_utf8()).sum::<usize>();
    for given in [2, 1, 0] {
        if given == 0 && !bare || chars.len() < given + 1 {
            continue;
        }
        if !chars[..given].iter().all(|c| ZH_GIVEN.contains(c)) {
            continue;
        }
        let surname_len = match (chars.get(given + 1), chars.get(given)) {
            (Some(a), Some(b)) if double.contains(&format!("{a}{b}")) => 2,
            (_, Some(b)) if single.contains(b) => 1,
            _ => continue,
        };
        let n = given + surname_len;
        let before = chars.get(n).copied();
        // A rare family name alone is usually part of a word (检查医师: 查).
        if given == 0 && surname_len == 1 && !ZH_COMMON_SURNAMES.contains(&chars[0]) {
            continue;
        }
        // 主任医师, 班主任周老师, 值班医生: the "family name" belongs to the word before it; 谢谢梁医生:
        // a doubled character is a word, not a family name.
        let pair: String = [before.unwrap_or(' '), chars[n - 1]].iter().collect();
        let doubled = before == Some(chars[n - 1]) && (given == 0 || DOUBLED_WORDS.contains(chars[n - 1]));
        if BLOCKED_BIGRAMS.contains(&pair.as_str()) || doubled {
            continue;
        }
        return Some(end - at(n));
    }
    None
}

/// Marks the other mentions of Chinese names of two or more characters already found, and of
/// their two-character given names alone (李沐阳, then 沐阳) and the nickname that doubles the
/// last of them (阳阳) where that is no word.
pub(crate) fn spread(text: &str, found: &mut Vec<Span>) {
    let mut names: Vec<String> = Vec::new();
    for s in found.iter().filter(|s| s.cat == Category::Name && s.conf >= 0.8) {
        let name: Vec<char> = text[s.start..s.end].chars().collect();
        if name.len() < 2 || !name.iter().all(|&c| is_han(c)) {
            continue;
        }
        names.push(name.iter().collect());
        let double: String = name.iter().take(2).collect();
        let surname = if ZH_SURNAMES.1.contains(&double) { 2 } else { 1 };
        let given: String = name[surname..].iter().collect();
        let word = NOT_GIVEN_PAIRS.contains(&given.as_str()) || GIVEN_NAMES_THAT_ARE_WORDS.contains(&given.as_str());
        if name.len() == surname + 2 && name[surname..].iter().all(|c| ZH_GIVEN.contains(c)) && !word {
            names.push(given);
            let last = name[name.len() - 1];
            if !DOUBLED_WORDS.contains(last) {
                names.push([last, last].iter().collect());
            }
        }
    }
    if names.is_empty() {
        return;
    }
    names.sort_unstable_by_key(|n| std::cmp::Reverse(n.len()));
    names.dedup();
    let pattern = names.iter().map(|n| regex::escape(n)).collect::<Vec<_>>().join("|");
    if let Ok(re) = regex::Regex::new(&pattern) {
        found.extend(re.find_iter(text).map(|m| Span::new(Category::Name, m.start(), m.end(), 0.85)));
    }
}

/// Characters whose doubling is a word (明明, 常常, 妈妈, 谢谢, 红红的), not a nickname.
const DOUBLED_WORDS: &str = "明常刚慢渐天往仅偏稍好多早默悄轻星宝乖谢哈妈爸哥姐弟妹爷奶叔姑舅婆公伯娃人个处时样年月日家重层见看想试说走等点些微纷匆连频一三五六七八九十静红高平白黄绿蓝小大少亮胖瘦甜香暖冷热软硬满圆快安";

/// Two-character given names that are also ordinary words (国庆节, 新生儿, 平安出院): not
/// spread alone from the full name.
const GIVEN_NAMES_THAT_ARE_WORDS: [&str; 24] = [
    "国庆", "新生", "平安", "健康", "建国", "建设", "和平", "胜利", "幸福", "快乐", "美丽", "光明", "文明", "永生", "长寿",
    "春节", "国华", "中华", "红梅", "海燕", "文静", "安静", "明亮", "天天",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<String> {
        let (mut out, simple) = (Vec::new(), crate::deid::lexicon::simplified(text));
        find(&simple, &mut out);
        spread(&simple, &mut out);
        super::super::detect::resolve(out).into_iter().map(|s| text[s.start..s.end].to_string()).collect()
    }

    #[test]
    fn all_patterns_compile() {
        for re in [&LABEL_RAW, &LABEL_FORM, &CUE_STRONG, &CUE_WEAK, &TITLE_AFTER, &SEX_AFTER, &SURNAME_SAID, &CALLED, &NICKNAME, &HAN_ALIAS] {
            assert!(re.is_some());
        }
    }

    #[test]
    fn names_after_labels_cues_and_before_titles() {
        assert_eq!(
            names("姓名：李建国　　性别：男\n患者李建国于5年前入院，其女儿李娜陪同。"),
            ["李建国", "李建国", "李娜"]
        );
        assert_eq!(names("上级医师：陈志明主任医师；请刘医生会诊"), ["陈志明", "刘"]);
        assert_eq!(names("曾凡英，女，96岁"), ["曾凡英"]);
        assert_eq!(names("家属：我明白。我哥孙立军在苏州，明天一早过来。"), ["孙立军"]);
        // Nicknames of 老 or 小 and a family name, and a Han name in brackets after a Latin one.
        assert_eq!(names("12床 老王（王福生），男；15床 小张（张雨桐）"), ["老王", "王福生", "小张", "张雨桐"]);
        assert_eq!(names("我是三床的女儿小林😊 加小苏打，用小程序"), ["小林"]);
        assert_eq!(names("Patient: CHAN Tai-man (陳大文)  (糖尿病) TRAb 12.4IU/L（阳性） Tan Ah Kow (陈亚狗)"), ["陳大文", "陈亚狗"]);
        // The given name alone, and its doubled last character, once the full name is found;
        // a name after a relative and a comma.
        assert_eq!(names("我叫李沐阳。沐阳几岁了？阳阳发烧。我是他妈妈，唐思琪。"), ["李沐阳", "沐阳", "阳阳", "唐思琪"]);
        assert_eq!(names("其女儿张晓明陪同，明明已好转"), ["张晓明"]);
        // The word before a title is not a family name with its last character.
        assert_eq!(names("班主任周老师说；谢谢梁医生"), ["周", "梁"]);
        assert_eq!(names("科主任任建国医师查房"), ["任建国"]);
        assert_eq!(names("由我们组的郭主治管床；人事是周经理管的；她老板陶姐人挺好；林治疗师评估"), ["郭", "周", "陶", "林"]);
        assert_eq!(names("白天有个护工，叫小翠，安徽的。小翠扶着呢。她叫小便"), ["小翠", "小翠"]);
        assert!(names("平时谁照顾老太太？顾问医生查房").is_empty(), "{:?}", names("平时谁照顾老太太？顾问医生查房"));
        assert_eq!(names("患者王国庆，国庆节后发热；患者刘平安，术后平安出院；患者李小红，皮疹红红的"), ["王国庆", "刘平安", "李小红"]);
    }

    #[test]
    fn words_that_start_with_a_family_name_are_not_names() {
        assert!(names("患者高热3天，常规治疗；主任医师查房，值班医生处理，患者于今日出院，康复医师随访。").is_empty());
    }
}
