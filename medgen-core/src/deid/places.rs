//! Places smaller than a state or province: street addresses, cities, ZIP and postal codes,
//! named facilities (hospitals, clinics, schools), in English and Chinese. States, provinces and
//! countries are left alone, as are departments ("Neurology Clinic", 心内科).

use super::detect::Span;
use super::lexicon::{
    captures, is_han, matches, regex, Pattern, COMMON, FIRST_NAMES, NOT_NAMES, REGIONS, SURNAMES, TOWNS, ZH_CITIES,
};
use super::{names, Category};

const STREET_SUFFIX: &str = r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Way|Terrace|Ter|Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq|Trail|Trl|Close|Crescent|Cres|Gardens|Grove|Row|Walk|Alley|Plaza|Loop|Pike|Turnpike|Expressway|Freeway)";
const STATE_CODES: &str = "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY";
// Codes that are also credentials or words ("Jane Smith, MD", "PA-C", "OR"): a city before
// them needs a ZIP code after.
const AMBIGUOUS_CODES: [&str; 10] = ["MD", "PA", "ME", "IN", "OR", "OK", "DE", "MA", "CO", "HI"];

regex!(
    ADDRESS = format!(
        r"(?:\b(?:Flat|Apt|Apartment|Unit|Suite|Ste|Room)\.? ?#?[A-Za-z0-9-]+,? )?\b\d{{1,6}}[A-Za-z]?(?:-\d{{1,5}})? (?:(?:N|S|E|W|NE|NW|SE|SW|North|South|East|West)\.? )?(?:(?:\d{{1,3}}(?:st|nd|rd|th)|[A-Z][A-Za-z'.-]*) ){{1,4}}{STREET_SUFFIX}\b\.?(?:,? (?:Apt|Apartment|Suite|Ste|Unit|Room|Rm|Floor|Fl|#)\.? ?#?[A-Za-z0-9-]+)?"
    )
);
// The same in lower case, as patients and hand-overs write it ("22 kestrel close", "3/17
// princes hwy", "w 54th st"): checked word by word in `lower_addresses`.
regex!(
    LOWER_ADDRESS = format!(
        r"(?i)\b\d{{1,5}}[a-z]?(?:/\d{{1,5}})? (?:[nsew]\.? )?((?:(?:\d{{1,3}}(?:st|nd|rd|th)|[a-z][a-z'-]*) ){{1,3}}){STREET_SUFFIX}\b\.?(?:[ \t]*[,\n.;)]|$)"
    )
);
// A Quebec or French address: "4417, rue Saint-Denis, app. 3, Montréal", "12 avenue des Pins".
regex!(
    FRENCH_ADDRESS = r"\b\d{1,5}[A-Za-z]?,? (?:rue|avenue|av\.|boulevard|boul\.|chemin|ch\.|place|rang|côte|route|allée|impasse|quai) (?:(?:de la|du|des|de|d'|l')[ ']?)?[A-ZÀ-Ý][\w'’-]*(?: [A-ZÀ-Ý][\w'’-]*){0,3}(?:, (?:app\.|appartement|bureau|local) ?\d+[A-Za-z]?)?(?:, [A-ZÀ-Ý][\w'’-]*(?:[ -][A-ZÀ-Ý][\w'’-]*){0,2})?"
);
regex!(PO_BOX = r"(?i)\b(?:P\.? ?O\.?|post office) box \d+\b");
regex!(
    STREET_NAMED = r"\b(?:[A-Z][a-z]+ ){1,3}(?:Street|Avenue|Road|Boulevard|Blvd|Lane|Drive|Parkway|Pkwy|Highway|Hwy|Terrace|Crescent|Plaza)\b|\b(?:Calle|Avenida|Rue|Via|Camino|Paseo) [A-Z][a-z]+(?: [A-Z][a-z]+)?"
);
regex!(
    CITY_STATE_ZIP = format!(
        r"\b([A-Z][a-z]+(?:[ -][A-Z][a-z]+){{0,2}}),? ({STATE_CODES}|[A-Z][a-z]+(?: [A-Z][a-z]+)?)\.?,? (\d{{5}}(?:-\d{{4}})?)\b"
    )
);
regex!(CITY_STATE = format!(r"\b([A-Z][a-z]+(?:[ -][A-Z][a-z]+){{0,2}}), ({STATE_CODES})\b"));
regex!(
    ZIP_LABELLED = r"(?i)\b(?:zip|zip code|postal code|postcode)\b[ \t\x{3000}]*[:：]?[ \t\x{3000}]*(\d{5}(?:-\d{4})?|[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}|[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z] ?\d[ABCEGHJ-NPRSTV-Z]\d)|(?:邮编|邮政编码)[ \t\x{3000}]*[:：]?[ \t\x{3000}]*(\d{6})"
);
// A British postcode ("IV2 3UJ") or a Canadian one ("L5B 3C2"), with its space.
regex!(POSTCODE = r"\b(?:[A-Z]{1,2}\d[A-Z\d]? \d[A-Z]{2}|[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z] \d[ABCEGHJ-NPRSTV-Z]\d)\b");
// A Canadian town, province and postal code ("New Westminster, BC V3M 1H2"), an Australian
// suburb, state and postcode ("Dandenong VIC 3175", "dandenong vic 3175").
regex!(
    CA_POSTCODE = r"\b([A-Z][a-z]+(?:[ -][A-Z][a-z]+){0,2},? )?(?:AB|BC|MB|NB|NL|NS|NT|NU|ON|PE|QC|SK|YT|Alberta|British Columbia|Manitoba|New Brunswick|Newfoundland|Nova Scotia|Ontario|Quebec|Saskatchewan)\.?,? ([ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z] ?\d[ABCEGHJ-NPRSTV-Z]\d)\b"
);
regex!(AU_POSTCODE = r"\b([A-Z][a-z]+(?: [A-Z][a-z]+)?|[a-z]+),? (?:NSW|VIC|QLD|TAS|ACT|SA|WA|NT|nsw|vic|qld|tas) (\d{4})\b");
regex!(
    FACILITY = r"\b((?:(?:St|Mt)\. |(?:[A-Z][A-Za-z'’-]*|of|the|and|&) ){1,6}?)(Hospitals?|Medical Cent(?:er|re)|Health Cent(?:er|re)|Health Care|Healthcare|Health System|Medical Group|Clinics?|Infirmary|Surgery|Nursing Home|Care Home|Care Cent(?:er|re)|Rehabilitation Cent(?:er|re)|Heart Cent(?:er|re)|Cancer Cent(?:er|re)|Cancer Institute|Behavioral Health|Behavioural Health|Mental Health Cent(?:er|re)|Hospice|Elementary School|Middle School|High School|Primary School|Academy|University|College|Pharmacy|Medical Associates|Urgent Care|Family Practice|Medical Practice|Practice|Imaging|Diagnostics|Laboratories|Dialysis Cent(?:er|re)|Surgical Cent(?:er|re)|Surgery Cent(?:er|re)|Eye Cent(?:er|re)|Institute|Family Medicine|Family Medical|Family Health|Internal Medicine|Visiting Nurses?|Home Health|Fire Rescue|Fire Department|EMS|Ambulance Service|Rehab|Mall|Pty Ltd|Pte Ltd|Sdn Bhd|Ltd|LLC|Inc|Associates|Funeral Home|Church|Parole Office|Probation Office|Community Club|Health Campus|Polyclinic|Elementary)\b((?: (?:of|in|at) (?:the )?[A-Z][a-z]+(?: [A-Z][a-z]+)?)?)"
);
regex!(
    GEO = r"\b(?:Lake|Mount|Mt\.|Fort|Cape) [A-Z][a-z]+(?: [A-Z][a-z]+)?\b|\b[A-Z][a-z]+(?: [A-Z][a-z]+)? (?:County|Parish|Township|Borough|Heights|Springs|Beach|Falls)\b"
);
// "the Westlake office": a branch named after its place.
regex!(NAMED_SITE = r"\bthe ([A-Z][a-z]+(?: [A-Z][a-z]+)?) (?:office|clinic|branch|location|campus|site|practice)\b");
regex!(
    CITY_CUE = r"\b(?:lives?|living|resides?|residing|resident|born|raised|moved|relocated|travel(?:l)?ed|travel(?:l)?ing|visiting|visited|vacationing|returned|transferred|flew|drove|home|house|apartment|flat|works?|working|employed|commutes?|pharmacy|clinic|office|store|branch|Walgreens|CVS)(?: (?:here|back|alone|up|down))? (?:in|to|from|at|near|around|on|outside|of) ((?:[A-Z][a-z]+|St\.)(?:[ -][A-Z][a-z]+){0,2})"
);
// An employer or a school named where someone works or studies: "employed by Ridgeline Roofing
// & Gutters", "a student at Goldsmiths".
regex!(
    EMPLOYER = r"\b(?:employed by|works? for|working for|worked for|works? at|working at|worked at|job at|student at|studies at|studying at|shifts? at)(?: the)? ((?:[A-Z][A-Za-z'’.-]*)(?: (?:& |and |of )?[A-Z][A-Za-z'’.-]*){0,3})"
);
// A business in lower case, as speech recognition writes it: "harbor drug", "fairhaven savings
// bank", "northgate logistics", "the tesco distribution centre", "northampton general".
regex!(
    LOWER_BUSINESS = r"\b(?:at|from|to|for|with|by|in|near) (?:the )?(((?:[a-z][a-z'’-]+ ){1,3})(drugs?|pharmacy|savings bank|bank|logistics|distribution cent(?:er|re)|warehouse|mall|general|hospital|nursing home|care home|assisted living|rehab|supermarket|auto body|motors|clinic|cent(?:er|re)|labs?))\b"
);
// A numbered road: "Route 9", "Highway 101", "State Route 2".
regex!(ROAD = r"\b(?:State |County |US |U\.S\. )?(?:Route|Rte\.?|Highway|Hwy\.?|Interstate|Road) \d{1,3}[A-Z]?\b");
// A hospital named by its town or a "Royal": "Southampton General", "Royal Bournemouth".
regex!(TOWN_HOSPITAL = r"\b(Royal [A-Z][a-z]+(?: [A-Z][a-z]+)?|[A-Z][a-z]+(?: [A-Z][a-z]+)? General)\b");
// A Malaysian or Indonesian facility named after its kind: "Hospital Tengku Ampuan Rahimah",
// "Klinik Kesihatan Seksyen 7", "Farmasi Alpro", "SMK Seksyen 9".
regex!(
    PREFIX_FACILITY = r"\b(?:(?:Hospital|Klinik Kesihatan|Klinik|Farmasi|Poliklinik|Sekolah(?: Kebangsaan| Menengah)?|SMK|SJK\(C\)|Rumah Sakit|Puskesmas|RSUD|RSIA|RSU|RS|SDN|SMPN|SMAN|Apotek) (?:[A-Z][a-z]+)(?: (?:[A-Z][a-z]+|\d{1,2}[A-Z]?)){0,3})"
);
// An address in Malaysia, Indonesia or the Philippines: its parts after their words (Jalan,
// Taman, Seksyen, Kampung, Barangay …), a house, block and lot before them, and the town,
// postcode and state after them: "No. 23, Jalan Mawar 4/2, Taman Sri Muda, 40400 Shah Alam",
// "Blk 12 Lot 7, Phase 3, Brgy. San Isidro, Antipolo City", "KLINIK KESIHATAN SEKSYEN 19, SHAH ALAM".
const SEA_ADDRESS_WORDS: [&str; 29] = [
    "Jalan", "Jln", "Jl", "Lorong", "Lrg", "Persiaran", "Lebuhraya", "Lebuh", "Taman", "Tmn", "Kampung", "Kpg",
    "Bandar", "Seksyen", "Barangay", "Brgy", "Purok", "Sitio", "Subdivision", "Gang", "Gg", "Kelurahan", "Kel",
    "Kecamatan", "Kec", "Komplek", "Perumahan", "Dusun", "Kampong",
];
regex!(
    SEA_ADDRESS = {
        let words = SEA_ADDRESS_WORDS.iter().flat_map(|w| [w.to_string(), w.to_uppercase()]).collect::<Vec<_>>().join("|");
        let token = r"[A-Z0-9][A-Za-z0-9/'’-]*\.?";
        let part = format!(r"\b(?:{words})\.? {token}(?: {token}){{0,5}}");
        let head = r"(?:\b(?:No|Lot|Blk|Block|Unit)\.? ?\d+[A-Z]?(?:-\d+)?,? (?:(?:Lot|Phase) \d+[A-Z]?,? )*)?";
        let town = r"(?:\d{5} )?[A-Z][A-Za-z'’-]+(?: [A-Z][A-Za-z'’-]+){0,2}";
        // A clinic, post office or school named after the place: "Pejabat Pos Seksyen 9".
        let kinds = ["Klinik Kesihatan", "Klinik", "Pejabat Pos", "Hospital", "Sekolah Kebangsaan", "Sekolah", "SK", "SMK"];
        let kinds = kinds.iter().flat_map(|w| [w.to_string(), w.to_uppercase()]).collect::<Vec<_>>().join("|");
        // An Indonesian neighbourhood inside an address: "RT 004/RW 03".
        let rt = r"RT \d{1,3}(?:/RW \d{1,3})?";
        format!(r"{head}(?:\b(?:{kinds}) )?{part}(?:, (?:{part}|{rt}|{town})){{0,5}}")
    }
);
// A workplace or school given as a form's value: "Employer: Rocklea Cold Storage Pty Ltd;",
// 工作单位：射阳港发电有限公司.
regex!(
    WORKPLACE = r"(?m)\b(?:Employer|Workplace|Place of work|Company|School)[ \t]*:[ \t]*([A-Z][^\n;(]{1,60}?)[ \t]*(?:[;(\n]|$)|(?:工作单位|单位名称|就读学校|所在单位)[ \t\x{3000}]*[:：][ \t\x{3000}]*([^\n，。；,;\s（(]{2,30})"
);
regex!(WORD_RUN = r"\b[A-Z][a-z]+(?:[ -][A-Z][a-z]+){0,3}");
// A street corner: "the corner of Main and Fifth", "Delmont Ave and Kessler St",
// 梅龙路与人民北路交叉口.
regex!(
    CORNER = {
        let name = r"[A-Z][a-z]+(?: [A-Z][a-z]+)?";
        let kind = r"(?: (?:St|Ave|Rd|Blvd|Dr|Street|Avenue|Road|Boulevard|Drive|Lane|Way)\b\.?)";
        format!(
            r"\b(?:(?:[Cc]orner|[Ii]ntersection|[Jj]unction) of|lights? at|crossing at) ({name}{kind}? (?:and|&) {name}{kind}?)|\b({name}{kind} (?:and|&) {name}{kind})"
        )
    }
);
regex!(
    ZH_CORNER = format!(
        r"[\p{{Han}}&&[^{stop}]][\p{{Han}}&&[^与和{suf}]]{{0,7}}(?:路|街|大道)(?:[一二三四五六七八九十]段)?(?:与|和)[\p{{Han}}&&[^与和{suf}]]{{1,8}}(?:路|街|大道)(?:[一二三四五六七八九十]段)?(?:交叉口|十字路口|路口|交口)",
        stop = ZH_STOP,
        suf = ZH_SUFFIXES,
    )
);
// A town in lower case after a preposition, as transcripts write it: "over in quincy".
regex!(LOWER_CITY = r"\b(?:in|from|to|at|near|around|outside|of) ([a-z]+(?:[ -][a-z]+){0,2})\b");

// Chinese. A place name is Han characters that are not function words, verbs of motion or the
// suffixes themselves, so "于广州市" starts at 广 and "患者家住" never becomes a place.
const ZH_STOP: &str = "于在到至往从自是住址为及和与的了我本外该其去来回返赴送转入出由经就曾这那被把给向对收诊前后等或已拟因即再并且请让叫找问说告现家居籍贯省市区县镇乡村路街道巷弄号楼室院病患者医";
// The first part of an address starts after a stop character; later parts may use any
// character but a suffix (花家地北里 after 望京街道).
const ZH_SUFFIXES: &str = "市区县镇乡村路街道巷弄号楼室省";
regex!(
    ZH_ADDRESS = format!(
        r"(?:[\p{{Han}}&&[^{stop}]]{{2,6}}{admin}(?:[\p{{Han}}&&[^{suf}]]{{1,6}}{admin}){{0,3}}(?:[\p{{Han}}&&[^{suf}]]{{1,10}}{street}(?:{cnum}号)?)?|[\p{{Han}}&&[^{stop}]]{{1,10}}{street}(?:\d+(?:-\d+)?号|{cnum}号))(?:\d+(?:-\d+)?号(?:院|楼)?)?(?:(?:[A-Za-z]|\d+)(?:号楼|栋|幢|座|单元|楼|层|室|号|户))*(?:\d+室?)?",
        cnum = "[一二三四五六七八九十百零]+",
        stop = ZH_STOP,
        suf = ZH_SUFFIXES,
        admin = "(?:市|自治州|地区|新区|区|县|旗|镇|乡|街道|村)",
        street = "(?:大道|大街|路|街|巷|弄|胡同|里)",
    )
);
regex!(
    ZH_FACILITY = format!(
        r"[\p{{Han}}\d&&[^{s}]][\p{{Han}}\d&&[^于在到至往从自是住址为及和与的了我本外该其去来回返赴送转入出由经就曾这那被把给向对收诊前后等或已拟因即再并且请让叫找问说告]]{{1,14}}(?:医院|卫生院|诊所|卫生服务中心|卫生服务站|卫生室|门诊部|保健院|疗养院|医疗中心|医学中心|体检中心|急救中心|小学|中学|大学|学院|幼儿园|养老院|敬老院|福利院|卫生所|护理之家|安养中心|护老院|安老院|码头|有限公司|有限责任公司|大药房)",
        s = ZH_STOP
    )
);
regex!(ZH_CITY = ZH_CITIES.join("|"));
// An employer named where someone works: 我在娃哈哈集团上班.
regex!(
    ZH_EMPLOYER = r"在(\p{Han}{2,8}?(?:集团|公司|厂|银行|超市|商场|酒店|饭店))(?:上班|工作|打工|做事|任职|当)"
);
// A housing estate with its building or phase (嘉绿苑七幢, 锦江华府二期, 碧海小区7栋): the
// number after the name keeps 政府 and 花园 alone out.
regex!(
    ZH_ESTATE = format!(
        r"[\p{{Han}}&&[^{stop}{suf}]]{{2,6}}(?:苑|府|小区|花园|公寓|大厦|家园|新村|山庄|华庭|公馆|名都|雅居)(?:(?:\d+|[一二三四五六七八九十]+)(?:期|幢|栋|号楼|单元|座|区))+",
        stop = ZH_STOP,
        suf = ZH_SUFFIXES,
    )
);

/// Words that end like a district or a city but are not places (社区获得性肺炎, 分娩镇痛, 超市).
const ZH_NOT_PLACES: [&str; 31] = [
    "社区",
    "病区",
    "城区",
    "郊区",
    "山区",
    "市区",
    "小区",
    "灾区",
    "疫区",
    "景区",
    "辖区",
    "分区",
    "术区",
    "肝区",
    "心前区",
    "城市",
    "超市",
    "都市",
    "上市",
    "股市",
    "门市",
    "城镇",
    "乡镇",
    "农村",
    "乡村",
    "家乡",
    "老乡",
    "下乡",
    "故乡",
    "他乡",
    "本县",
];
/// Generic words a facility's name may be made of only: 当地医院, 上级医院, 第一人民医院 alone.
const ZH_GENERIC: [&str; 56] = [
    "当地",
    "上级",
    "基层",
    "综合",
    "专科",
    "定点",
    "三甲",
    "二甲",
    "三级",
    "二级",
    "一级",
    "省级",
    "市级",
    "县级",
    "区级",
    "私立",
    "公立",
    "附近",
    "其他",
    "多家",
    "某",
    "各级",
    "大型",
    "小型",
    "省",
    "市",
    "县",
    "区",
    "镇",
    "乡",
    "村",
    "社区",
    "街道",
    "人民",
    "中心",
    "中医",
    "中西医结合",
    "妇幼保健",
    "妇幼",
    "儿童",
    "肿瘤",
    "精神病",
    "传染病",
    "口腔",
    "附属",
    "第一",
    "第二",
    "第三",
    "教学",
    "民营",
    "私人",
    "康复",
    "护理",
    "一家",
    "家",
    "大",
];
/// Words that make up a department's or a kind of facility's name, not a place's.
const EN_GENERIC: [&str; 46] = [
    "general",
    "family",
    "medicine",
    "internal",
    "emergency",
    "community",
    "university",
    "teaching",
    "children's",
    "childrens",
    "women's",
    "memorial",
    "regional",
    "county",
    "city",
    "state",
    "veterans",
    "the",
    "of",
    "and",
    "&",
    "day",
    "minor",
    "walk-in",
    "urgent",
    "primary",
    "care",
    "local",
    "outpatient",
    "inpatient",
    "private",
    "public",
    "specialty",
    "medical",
    "health",
    "mental",
    "cancer",
    "heart",
    "behavioral",
    "rehabilitation",
    "diagnostic",
    "surgical",
    "dialysis",
    "eye",
    "imaging",
    "group",
];

/// Adds every place in `text` to `out`.
/// Street addresses in any case: the street's words must not be function words, numbers or
/// units ("2 cars on the road", "3 tabs per day" are no addresses), nor all frequent words.
fn lower_addresses(text: &str, out: &mut Vec<Span>) {
    const NOT_STREET: [&str; 24] = [
        "the", "a", "an", "on", "in", "at", "of", "to", "and", "or", "by", "per", "my", "his", "her", "their", "our",
        "your", "x", "for", "from", "with", "times", "then",
    ];
    for c in captures(&LOWER_ADDRESS, text) {
        let (Some(m), Some(words)) = (c.get(0), c.get(1)) else { continue };
        let words: Vec<String> = words.as_str().split_whitespace().map(str::to_lowercase).collect();
        let ordinal = |w: &str| w.starts_with(|c: char| c.is_ascii_digit());
        let plain = |w: &str| NOT_STREET.contains(&w) || super::spoken::is_number_word(w) || super::spoken::is_unit_word(w);
        if words.iter().any(|w| plain(w)) || words.iter().all(|w| COMMON.contains(w) && !ordinal(w)) {
            continue;
        }
        let end = m.start() + m.as_str().trim_end_matches(|c: char| !c.is_alphanumeric()).len();
        out.push(Span::new(Category::Location, m.start(), end, 0.85));
    }
}

pub(crate) fn find(text: &str, out: &mut Vec<Span>) {
    let each = |re: &'static Pattern| captures(re, text);
    for c in each(&ADDRESS) {
        if let Some(m) = c.get(0) {
            out.push(Span::new(Category::Location, m.start(), m.end(), 0.9));
        }
    }
    lower_addresses(text, out);
    for c in each(&PO_BOX) {
        if let Some(m) = c.get(0) {
            out.push(Span::new(Category::Location, m.start(), m.end(), 0.9));
        }
    }
    for c in each(&STREET_NAMED) {
        if let Some(m) = c.get(0) {
            if let Some((s, e)) = strip_generic_words(text, m.start(), m.end(), 1) {
                out.push(Span::new(Category::Location, s, e, 0.75));
            }
        }
    }
    for c in each(&CITY_STATE_ZIP) {
        let (Some(city), Some(state), Some(zip)) = (c.get(1), c.get(2), c.get(3)) else { continue };
        if state.as_str().len() == 2 || REGIONS.contains(&state.as_str().to_lowercase()) {
            if let Some((s, e)) = strip_generic_words(text, city.start(), city.end(), 0) {
                out.push(Span::new(Category::Location, s, e, 0.9));
            }
            out.push(Span::new(Category::Location, zip.start(), zip.end(), 0.92));
        }
    }
    for c in each(&CITY_STATE) {
        if let (Some(city), Some(code)) = (c.get(1), c.get(2)) {
            if !AMBIGUOUS_CODES.contains(&code.as_str()) {
                if let Some((s, e)) = strip_generic_words(text, city.start(), city.end(), 0) {
                    out.push(Span::new(Category::Location, s, e, 0.8));
                }
            }
        }
    }
    for c in each(&ZIP_LABELLED) {
        if let Some(m) = c.get(1).or_else(|| c.get(2)) {
            out.push(Span::new(Category::Location, m.start(), m.end(), 0.93));
        }
    }
    for c in each(&CA_POSTCODE).chain(each(&AU_POSTCODE)) {
        if let Some(town) = c.get(1) {
            let (start, town) = (town.start(), town.as_str().trim_end_matches([',', ' ']));
            if let Some((s, e)) = strip_generic_words(text, start, start + town.len(), 0) {
                out.push(Span::new(Category::Location, s, e, 0.85));
            }
        }
        if let Some(code) = c.get(2) {
            out.push(Span::new(Category::Location, code.start(), code.end(), 0.9));
        }
    }
    for c in each(&POSTCODE) {
        if let Some(m) = c.get(0) {
            out.push(Span::new(Category::Location, m.start(), m.end(), 0.8));
        }
    }
    for c in each(&FACILITY) {
        let (Some(all), Some(name), Some(kind)) = (c.get(0), c.get(1), c.get(2)) else { continue };
        // Drop leading words that are lower case or never part of a name ("Call", "the").
        let mut start = name.start();
        for w in name.as_str().split(' ').filter(|w| !w.is_empty()) {
            if w.starts_with(|ch: char| ch.is_uppercase()) && !NOT_NAMES.contains(&w.to_lowercase())
                || w == "St."
                || w == "Mt."
            {
                break;
            }
            start += w.len() + 1;
        }
        let name_words = text[start..kind.start()].split([' ', '-']).filter(|w| !w.is_empty());
        let tail = c.get(3).map_or("", |m| m.as_str());
        // "Developmental Clinic", "Paediatric Imaging": a specialty's adjective names no place.
        let adjective = |lw: &str| {
            ["al", "ic", "ics", "ive", "ary", "ory", "ology"].iter().any(|e| lw.ends_with(e)) && !TOWNS.contains(lw)
        };
        let specific = name_words.chain(tail.split(' ')).any(|w| {
            let lw = w.to_lowercase();
            w.starts_with(|ch: char| ch.is_uppercase())
                && !EN_GENERIC.contains(&lw.as_str())
                && !NOT_NAMES.contains(&lw)
                && !adjective(&lw)
                || w == "St."
                || w == "Mt."
        });
        if specific && start < kind.start() {
            out.push(Span::new(Category::Location, start, all.end(), 0.85));
        }
    }
    for c in each(&GEO) {
        if let Some(m) = c.get(0) {
            let second = m.as_str().split(' ').nth(1).unwrap_or_default().to_lowercase();
            if !REGIONS.contains(&m.as_str().to_lowercase()) && !NOT_NAMES.contains(&second) {
                out.push(Span::new(Category::Location, m.start(), m.end(), 0.75));
            }
        }
    }
    for c in each(&NAMED_SITE) {
        if let Some(m) = c.get(1) {
            if let Some((s, e)) = strip_generic_words(text, m.start(), m.end(), 0) {
                out.push(Span::new(Category::Location, s, e, 0.75));
            }
        }
    }
    for c in each(&EMPLOYER) {
        let Some(m) = c.get(1) else { continue };
        let first = m.as_str().split(' ').next().unwrap_or_default().to_lowercase();
        let place = m.as_str().trim_end_matches(['.', '-']);
        if !NOT_NAMES.contains(&first) && !COMMON.contains(&first) && !REGIONS.contains(&place.to_lowercase()) {
            out.push(Span::new(Category::Location, m.start(), m.start() + place.len(), 0.75));
        }
    }
    for m in matches(&PREFIX_FACILITY, text) {
        let mut words: Vec<&str> = m.as_str().split(' ').collect();
        // A number that goes on into a date ("Rahimah 03/2024") is not the facility's.
        if text[m.end()..].starts_with(['/', '-', '.']) && words.last().is_some_and(|w| w.starts_with(|c: char| c.is_ascii_digit())) {
            words.pop();
        }
        let end = m.start() + words.join(" ").len();
        // "Hospital Course", "Hospital Day 3": the words after the kind must be a name's.
        let named = words.iter().skip(1).any(|w| {
            let lw = w.to_lowercase();
            w.starts_with(char::is_uppercase) && !NOT_NAMES.contains(&lw) && !COMMON.contains(&lw)
        });
        if named && (words[0] != "Hospital" || words.len() >= 3) {
            out.push(Span::new(Category::Location, m.start(), end, 0.8));
        }
    }
    for c in each(&WORKPLACE) {
        let Some(m) = c.get(1).or_else(|| c.get(2)) else { continue };
        let v = m.as_str().trim_end_matches(['.', ',', ' ']);
        let lv = v.to_lowercase();
        let none = ["none", "n/a", "na", "nil", "retired", "unemployed", "self-employed", "self employed", "unknown", "无", "退休", "无业"];
        if !none.contains(&lv.as_str()) && !NOT_NAMES.contains(&lv) {
            out.push(Span::new(Category::Location, m.start(), m.start() + v.len(), 0.8));
        }
    }
    for m in matches(&FRENCH_ADDRESS, text) {
        out.push(Span::new(Category::Location, m.start(), m.end(), 0.85));
    }
    for m in matches(&SEA_ADDRESS, text) {
        // A state at the end is larger than a place: "…, 40400 Shah Alam, Selangor".
        let end = match m.as_str().rsplit_once(", ") {
            Some((head, state)) if REGIONS.contains(&state.to_lowercase()) => m.start() + head.len(),
            _ => m.end(),
        };
        out.push(Span::new(Category::Location, m.start(), end, 0.85));
    }
    for c in each(&LOWER_BUSINESS) {
        let (Some(m), Some(name), Some(kind)) = (c.get(1), c.get(2), c.get(3)) else { continue };
        // The words before the kind: one must be a town or no frequent word, and a hospital or
        // "general" needs a town ("the local pharmacy", "the heart hospital").
        let name: Vec<&str> = name.as_str().split_whitespace().collect();
        let town = name.iter().any(|w| TOWNS.contains(*w)) || TOWNS.contains(&name.join(" "));
        let rare = name.iter().any(|w| !COMMON.contains(*w) && !NOT_NAMES.contains(*w) && !w.ends_with("ic") && !w.ends_with("al") && !w.ends_with("ology") && !w.ends_with("tion"));
        let needs_town = matches!(kind.as_str(), "general" | "hospital");
        // A clinic, centre or lab of one word is as often a service ("the diabetes clinic"):
        // its word must be a town or a name ("the galway clinic", "sullivan labs").
        let named = name.iter().any(|w| FIRST_NAMES.contains(*w) || SURNAMES.contains(*w));
        // Of more words, one must be rare and no abbreviation ("the cath lab", "the ob gyn clinic").
        let long_rare = name.iter().any(|w| w.len() >= 5 && !COMMON.contains(*w) && !NOT_NAMES.contains(*w));
        let service = matches!(kind.as_str(), "clinic" | "center" | "centre" | "lab" | "labs")
            && !named
            && (name.len() < 2 || !long_rare);
        if town || rare && !needs_town && !service {
            out.push(Span::new(Category::Location, m.start(), m.end(), 0.7));
        }
    }
    for m in matches(&ROAD, text) {
        out.push(Span::new(Category::Location, m.start(), m.end(), 0.8));
    }
    for c in each(&TOWN_HOSPITAL) {
        let Some(m) = c.get(1) else { continue };
        let s = m.as_str();
        let place = s.trim_start_matches("Royal ").trim_end_matches(" General").to_lowercase();
        let institution = ["college", "colleges", "society", "mail", "navy", "marines", "academy", "commission", "household"];
        let word = NOT_NAMES.contains(&place) || COMMON.contains(&place) || FIRST_NAMES.contains(&place);
        if TOWNS.contains(&place) || !word && !institution.contains(&place.as_str()) && !EN_GENERIC.contains(&place.as_str()) {
            out.push(Span::new(Category::Location, m.start(), m.end(), 0.8));
        }
    }
    for c in each(&CITY_CUE) {
        if let Some(m) = c.get(1) {
            let place = m.as_str();
            let lower = place.to_lowercase();
            let first = lower.split([' ', '-']).next().unwrap_or_default();
            if !REGIONS.contains(&lower) && !NOT_NAMES.contains(first) {
                out.push(Span::new(Category::Location, m.start(), m.end(), 0.8));
            }
        }
    }
    for c in each(&CORNER) {
        if let Some(m) = c.get(1).or_else(|| c.get(2)) {
            out.push(Span::new(Category::Location, m.start(), m.end(), 0.8));
        }
    }
    for c in each(&ZH_CORNER) {
        if let Some(m) = c.get(0) {
            out.push(Span::new(Category::Location, m.start(), m.end(), 0.8));
        }
    }
    find_known_cities(text, out);
    for c in each(&LOWER_CITY) {
        let Some(m) = c.get(1) else { continue };
        // The longest run of words from the first that is a known city and no common word.
        let ends = m.as_str().match_indices([' ', '-']).map(|(at, _)| at).chain([m.len()]);
        let city = ends.collect::<Vec<_>>().into_iter().rev().find(|&end| {
            let phrase = &m.as_str()[..end];
            TOWNS.contains(phrase)
                && !COMMON.contains(phrase)
                && !FIRST_NAMES.contains(phrase)
                && !CITY_WORDS_TOO.contains(&phrase)
        });
        if let Some(end) = city {
            // "glasgow coma scale", "ottawa ankle rules", "boston brace": a thing named after a town.
            let rest = &text[m.start() + end..];
            let words = rest.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()).take(2);
            let thing = words.map(str::to_lowercase).any(|w| CITY_THING_WORDS.contains(&w.as_str()));
            if !thing && !town_eponym(rest) {
                out.push(Span::new(Category::Location, m.start(), m.start() + end, 0.7));
            }
        }
    }
    find_chinese(text, out);
}

/// Does `rest` make the town before it a thing's name ("Boston brace")? "the Boston area" is
/// the town's (an eponym's area is Broca's or Wernicke's, not a town's).
fn town_eponym(rest: &str) -> bool {
    names::is_eponym_head(rest) && !rest.trim_start().get(..4).is_some_and(|w| w.eq_ignore_ascii_case("area"))
}

/// City names that are common words, or name things more often than towns.
const CITY_WORDS_TOO: [&str; 6] = ["mobile", "independence", "columbia", "aurora", "ontario", "reading"];
/// Words after a city's name that make it the name of a scale, a sign or a stool chart.
const CITY_THING_WORDS: [&str; 17] = [
    "coma", "stool", "postnatal", "consensus", "scientific", "histologic", "criteria", "rules", "rule", "hump", "collar",
    "brace", "type", "classification", "score", "scale", "sign",
];

/// Cities from the gazetteer, as whole capitalised words ("Boston", "Salt Lake City").
fn find_known_cities(text: &str, out: &mut Vec<Span>) {
    for m in matches(&WORD_RUN, text) {
        // The longest run of words that is a known city, from each word on.
        let words: Vec<(usize, &str)> = m
            .as_str()
            .split([' ', '-'])
            .scan(m.start(), |pos, w| {
                let at = *pos;
                *pos += w.len() + 1;
                Some((at, w))
            })
            .collect();
        let mut i = 0;
        while i < words.len() {
            let mut found = None;
            for j in (i..words.len().min(i + 4)).rev() {
                let end = words[j].0 + words[j].1.len();
                let phrase = text[words[i].0..end].to_lowercase();
                // A one-word city that is also a given name (Charlotte, Austin) needs a cue.
                let person = i == j && (FIRST_NAMES.contains(&phrase) || CITY_WORDS_TOO.contains(&phrase.as_str()));
                if TOWNS.contains(&phrase) && !person {
                    found = Some((j, end));
                    break;
                }
            }
            if let Some((j, end)) = found {
                // "Jackson-Pratt drain", "Glasgow Coma Scale", "Edinburgh Postnatal Depression Scale".
                let rest = &text[end..];
                let next_word =
                    rest.trim_start_matches(' ').split(|c: char| !c.is_alphabetic()).next().unwrap_or_default();
                let thing =
                    CITY_THING_WORDS.contains(&next_word.to_lowercase().as_str()) || town_eponym(rest);
                if !rest.starts_with('-') && !thing {
                    out.push(Span::new(Category::Location, words[i].0, end, 0.7));
                }
                i = j + 1;
            } else {
                i += 1;
            }
        }
    }
}

fn find_chinese(text: &str, out: &mut Vec<Span>) {
    for m in matches(&ZH_ADDRESS, text) {
        let s = m.as_str();
        let parts = s.chars().filter(|c| "市州区县旗镇乡村路街巷弄号栋幢座单元楼层室".contains(*c)).count();
        let single = parts <= 1 && !s.chars().any(|c| c.is_ascii_digit());
        if single {
            // One district, town or village alone ("基底节区", "分娩镇痛") is a place only after an
            // address cue; a city alone ("长沙市") is one unless it is a word like 超市.
            let next = text[m.end()..].chars().next();
            let before: String =
                text[..m.start()].chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
            let cued =
                ["住", "址", "省", "市", "来自", "位于", "籍", "户", "迁", "居"].iter().any(|c| before.contains(c));
            let city = s.ends_with('市');
            if ZH_NOT_PLACES.iter().any(|w| s.ends_with(w))
                || next.is_some_and(|c| "痛静咳定吐压".contains(c))
                || !city && !cued
            {
                continue;
            }
        }
        let conf = if single { 0.75 } else { 0.9 };
        out.push(Span::new(Category::Location, m.start(), m.end(), conf));
    }
    for m in matches(&ZH_FACILITY, text) {
        let s = m.as_str();
        let kinds = [
            "卫生服务中心",
            "卫生服务站",
            "医院",
            "卫生院",
            "诊所",
            "卫生室",
            "门诊部",
            "保健院",
            "疗养院",
            "医疗中心",
            "医学中心",
            "体检中心",
            "急救中心",
            "小学",
            "中学",
            "大学",
            "学院",
            "幼儿园",
            "养老院",
            "敬老院",
            "福利院",
            // Taiwan's and Hong Kong's (the rules read traditional text as simplified).
            "卫生所",
            "护理之家",
            "安养中心",
            "护老院",
            "安老院",
            "码头",
            "有限公司",
            "有限责任公司",
            "大药房",
        ];
        let Some(kind) = kinds.iter().find(|k| s.ends_with(*k)) else { continue };
        let mut name = &s[..s.len() - kind.len()];
        // Strip generic words from the front; a name made only of them is no place.
        'strip: loop {
            for g in ZH_GENERIC {
                if let Some(rest) = name.strip_prefix(g) {
                    name = rest;
                    continue 'strip;
                }
            }
            break;
        }
        if name.chars().count() >= 2
            || name.chars().count() == 1 && !name.starts_with(|c: char| c.is_ascii_digit()) && s.chars().count() >= 5
        {
            out.push(Span::new(Category::Location, m.start(), m.end(), 0.85));
        }
    }
    for c in captures(&ZH_EMPLOYER, text) {
        let Some(m) = c.get(1) else { continue };
        // "在一家公司上班", "在我们公司工作": no name.
        let generic = ["一家", "这家", "那家", "一个", "这个", "那个", "我们", "他们", "她们", "你们", "本", "外", "大", "小", "私人", "国营", "民营", "外资", "合资", "上市"];
        let suffix_len = ["集团", "公司", "厂", "银行", "超市", "商场", "酒店", "饭店"]
            .iter()
            .find(|k| m.as_str().ends_with(*k))
            .map_or(0, |k| k.len());
        // An industry is no employer ("在化工厂工作", "在钢铁公司"); nor is 在 of 现在 or 实在.
        let industries = ["化工", "纺织", "钢铁", "机械", "电子", "服装", "食品", "建筑", "汽车", "制药", "印刷", "化肥", "水泥", "煤矿", "家具", "塑料", "工"];
        let mut name = &m.as_str()[..m.as_str().len() - suffix_len];
        while let Some(rest) = industries.iter().find_map(|w| name.strip_suffix(w)) {
            name = rest;
        }
        let word_before = text[..c.get(0).map_or(0, |w| w.start())].ends_with(['现', '实', '所', '存', '正', '自', '好']);
        if name.chars().count() >= 2 && !generic.iter().any(|g| name.starts_with(g)) && !word_before {
            out.push(Span::new(Category::Location, m.start(), m.end(), 0.8));
        }
    }
    for m in matches(&ZH_ESTATE, text) {
        out.push(Span::new(Category::Location, m.start(), m.end(), 0.85));
    }
    for m in matches(&ZH_CITY, text) {
        // 长春新碱 (vincristine), 长春瑞滨: drugs named after the periwinkle, not the city.
        if !ZH_CITY_NOT.iter().any(|w| text[m.start()..].starts_with(w)) {
            out.push(Span::new(Category::Location, m.start(), m.end(), 0.75));
        }
    }
}

/// Words that start with a city's name and are something else.
const ZH_CITY_NOT: [&str; 5] = ["长春新碱", "长春瑞滨", "长春地辛", "长春西汀", "长春花"];

/// Trims leading words that are never names ("Follow", "The"); None when fewer than `min_left`
/// capitalised words stay before the street word (or none at all stays, when `min_left` is 0).
fn strip_generic_words(text: &str, start: usize, end: usize, min_left: usize) -> Option<(usize, usize)> {
    let span = &text[start..end];
    let mut s = start;
    let words: Vec<&str> = span.split(' ').collect();
    let mut kept = words.len();
    for (i, w) in words.iter().enumerate() {
        let lw = w.to_lowercase();
        // "New Westminster", "West Covina": the first word of a place's name, not a generic one.
        let prefix = ["new", "north", "south", "east", "west", "port", "fort", "mount", "lake"].contains(&lw.as_str())
            && words.get(i + 1).is_some_and(|n| n.starts_with(|c: char| c.is_uppercase()));
        if !prefix && (NOT_NAMES.contains(&lw) || REGIONS.contains(&lw) && min_left == 0) {
            s += w.len() + 1;
            kept -= 1;
        } else {
            break;
        }
    }
    let needed = if min_left == 0 { 1 } else { min_left + 1 };
    (kept >= needed && s < end && !is_han_run(&text[s..end])).then_some((s, end))
}

fn is_han_run(s: &str) -> bool {
    s.chars().all(is_han)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn places(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        find(&crate::deid::lexicon::simplified(text), &mut out);
        super::super::detect::resolve(out).into_iter().map(|s| text[s.start..s.end].to_string()).collect()
    }

    #[test]
    fn all_patterns_compile() {
        for re in [
            &ADDRESS,
            &PO_BOX,
            &LOWER_ADDRESS,
            &STREET_NAMED,
            &CITY_STATE_ZIP,
            &CITY_STATE,
            &ZIP_LABELLED,
            &POSTCODE,
            &SEA_ADDRESS,
            &FRENCH_ADDRESS,
            &CA_POSTCODE,
            &EMPLOYER,
            &PREFIX_FACILITY,
            &WORKPLACE,
            &LOWER_BUSINESS,
            &ROAD,
            &TOWN_HOSPITAL,
            &AU_POSTCODE,
            &FACILITY,
            &GEO,
            &CITY_CUE,
            &WORD_RUN,
            &LOWER_CITY,
            &CORNER,
            &ZH_CORNER,
            &ZH_ADDRESS,
            &ZH_FACILITY,
            &ZH_EMPLOYER,
            &ZH_ESTATE,
            &ZH_CITY,
        ] {
            assert!(re.is_some());
        }
    }

    #[test]
    fn english_addresses_cities_and_zip_codes_but_not_states() {
        assert_eq!(
            places("Lives at 418 Maple Grove Road, Dayton, OH 45402."),
            ["418 Maple Grove Road", "Dayton", "45402"]
        );
        assert_eq!(places("Seen at Lakeside Family Clinic and the Neurology Clinic."), ["Lakeside Family Clinic"]);
        assert_eq!(places("She moved from Texas; he lives in Milwaukee."), ["Milwaukee"]);
        assert_eq!(places("410 Agnes St, New Westminster, BC V3M 1H2. Referred"), ["410 Agnes St", "New Westminster", "V3M 1H2"]);
        assert_eq!(places("lives at 3/17 princes hwy dandenong vic 3175"), ["dandenong", "3175"]);
        assert_eq!(places("Postal code L5B 3C2. Or postal code:M5V3L9; IV2 3UJ"), ["L5B 3C2", "M5V3L9", "IV2 3UJ"]);
        assert_eq!(places("Adelaide SA 5000; relocates to the Boston area"), ["Adelaide", "5000", "Boston"]);
        assert_eq!(
            places("Dr. Tran, Kingsway Family Medical; Harlow County EMS; Westerville Internal Medicine; the Maplewood Mall"),
            ["Kingsway Family Medical", "Harlow County EMS", "Westerville Internal Medicine", "Maplewood Mall"]
        );
        assert_eq!(
            places("45 y/o roofer (employed by Ridgeline Roofing & Gutters) on Route 9; a student at Goldsmiths."),
            ["Ridgeline Roofing & Gutters", "Route 9", "Goldsmiths"]
        );
        assert_eq!(
            places("i work at northgate logistics. clinic at northampton general; second opinion, Southampton General; Royal Bournemouth"),
            ["northgate logistics", "northampton general", "Southampton General", "Royal Bournemouth"]
        );
        assert_eq!(
            places("Employer: Rocklea Cold Storage Pty Ltd; supervisor. at Hospital Tengku Ampuan Rahimah 03/2024; Farmasi Alpro Seksyen 7 (value)"),
            ["Rocklea Cold Storage Pty Ltd", "Hospital Tengku Ampuan Rahimah", "Farmasi Alpro Seksyen 7"]
        );
        assert_eq!(
            places("Alamat: No. 23, Jalan Mawar 4/2, Taman Sri Muda, 40400 Shah Alam, Selangor\nTel"),
            ["No. 23, Jalan Mawar 4/2, Taman Sri Muda, 40400 Shah Alam"]
        );
        assert_eq!(
            places("Address: Blk 12 Lot 7, Phase 3, Brgy. San Isidro, Antipolo City, Rizal\nKLINIK KESIHATAN SEKSYEN 19, SHAH ALAM - REKOD"),
            ["Blk 12 Lot 7, Phase 3, Brgy. San Isidro, Antipolo City, Rizal", "KLINIK KESIHATAN SEKSYEN 19, SHAH ALAM"]
        );
        assert!(places("jalan kaki sikit, taman permainan; the tmn is low; s/p RT 50 Gy, RT Knee Pain, Wt 82 Kg BMI 28").is_empty());
        assert_eq!(
            places("Alamat: Jl. Kemang Timur Raya No. 27, RT 004/RW 03, Kel. Bangka, Kec. Mampang Prapatan, Jakarta Selatan\n"),
            ["Jl. Kemang Timur Raya No. 27, RT 004/RW 03, Kel. Bangka, Kec. Mampang Prapatan, Jakarta Selatan"]
        );
        assert_eq!(
            places("Adresse: 4417, rue Saint-Denis, app. 3, Montréal (Québec); dirigée au RSUD Mampang Prapatan. Clarithromycin 500 bd IV"),
            ["4417, rue Saint-Denis, app. 3, Montréal", "RSUD Mampang Prapatan"]
        );
        assert_eq!(places("send him to the aspen ridge wound center, seen in the galway clinic"), ["aspen ridge wound center", "galway clinic"]);
        assert!(places("at the diabetes clinic, to the wound center, in the eye clinic, at the lab, in the cardiac cath lab, to the ob gyn clinic").is_empty());
        assert_eq!(places("职业：电气工程师　工作单位：射阳港发电有限公司\n"), ["射阳港发电有限公司"]);
        assert_eq!(places("患者为成都地铁运营有限公司检修工；在益丰大药房买药"), ["成都地铁运营有限公司", "益丰大药房"]);
        for t in ["Employer: none\nDevelopmental Clinic, Level 2; Hospital Course: stable; Hospital Day 3", "School: N/A"] {
            assert!(places(t).is_empty(), "{t}: {:?}", places(t));
        }
        for t in ["at the local pharmacy, to the heart hospital, at the anticoagulation clinic, from the blood bank, at the general", "works at Home, student at University", "Royal Mail; the Royal Society; the Surgeon General, Attorney General"] {
            assert!(places(t).is_empty(), "{t}: {:?}", places(t));
        }
        for t in ["General Internal Medicine consulted; the Lumbar area; Family Medicine clinic", "BC 5 mg, ON 7 days", "the Emergency area"] {
            assert!(places(t).is_empty(), "{t}: {:?}", places(t));
        }
        assert_eq!(places("i drive the bus over in quincy, out to new york"), ["quincy", "new york"]);
        assert!(places("in reading, in mobile, to charlotte, a change in columbia").is_empty());
        assert_eq!(
            places("lives alone 22 kestrel close, wythenshawe. dtr at 3/17 princes hwy\nsent to 5 alder st."),
            ["22 kestrel close", "3/17 princes hwy", "5 alder st"]
        );
        assert!(places("2 cars on the road, 3 tabs per day, took 2 by mouth st.").is_empty());
        for t in ["drop in glasgow coma scale", "according to ottawa ankle rules", "placed in boston brace"] {
            assert!(places(t).is_empty(), "{t}");
        }
    }

    #[test]
    fn chinese_addresses_and_facilities_but_not_provinces_or_wards() {
        assert_eq!(places("现住址：广东省广州市天河区体育西路123号3栋502室"), ["广州市天河区体育西路123号3栋502室"]);
        assert_eq!(places("住在十全街一百零八号三单元。"), ["十全街一百零八号"]);
        assert_eq!(places("住我家，西湖区文三路二百一十八号，嘉绿苑七幢。"), ["西湖区文三路二百一十八号", "嘉绿苑七幢"]);
        assert_eq!(places("成都市锦江区东大街，锦江华府二期；碧海小区7栋。区政府旁的花园"), ["成都市锦江区东大街", "锦江华府二期", "碧海小区7栋"]);
        assert_eq!(places("他住在碧海小区7栋；她搬到锦江华府二期了；儿子去年买了嘉绿苑七幢的房子"), ["碧海小区7栋", "锦江华府二期", "嘉绿苑七幢"]);
        for t in ["住在三楼，第五号床，走了一里路", "留观区三号床", "转到监护区一号床"] {
            assert!(places(t).is_empty(), "{t}: {:?}", places(t));
        }
        assert_eq!(places("住在朝阳区两年了"), ["朝阳区"]);
        assert_eq!(places("at the corner of Main and Fifth, then"), ["Main and Fifth"]);
        assert_eq!(places("near Delmont Ave and Kessler St."), ["Delmont Ave and Kessler St."]);
        assert_eq!(places("在梅龙路与人民北路交叉口摔倒"), ["梅龙路与人民北路交叉口"]);
        assert!(places("tired and short of breath; Smith and Jones reviewed it").is_empty());
        assert_eq!(places("曾在广州市第一人民医院诊断，转入我院心内科"), ["广州市第一人民医院"]);
        assert_eq!(places("2023/12/18 at 亞東醫院). Accompanied"), ["亞東醫院"]);
        assert_eq!(places("我在娃哈哈集团上班，经常出差。"), ["娃哈哈集团"]);
        assert_eq!(places("以前在苏州第二纺织厂当机修工"), ["苏州第二纺织厂"]);
        assert!(places("我在一家公司上班，她在我们公司工作").is_empty());
        assert!(places("在化工厂工作20年，现在纺织厂上班，在钢铁公司工作；患者为16岁高中生").is_empty());
        assert!(places("重症社区获得性肺炎，分娩镇痛，当地医院就诊，尿路感染").is_empty());
    }
}
