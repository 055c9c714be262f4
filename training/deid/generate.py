#!/usr/bin/env python3
"""Synthetic clinical notes with surrogate PHI and exact character-span annotations.

Writes DIR/train.jsonl, DIR/val.jsonl and DIR/heldout.jsonl for training a learned PHI tagger
(BIO tokens) on English, Chinese and mixed notes. Every identifier is invented: names and
addresses come from Faker pools drawn once per locale, numbers from patterns (with real check
digits where the format has one). Non-PHI filler prose with a large clinical and everyday
vocabulary (vocab_en.txt, vocab_zh.txt and Faker's text providers) is mixed into every note. A
note is built by appending plain pieces and entity pieces, so each span is exact by construction; the held-out split uses only note templates and locales
that train and val never use. Categories and marking conventions are medgen's (see
medgen-core/src/deid/mod.rs and tests/data/deid/README.md); training/deid/README.md has more.

    python training/deid/generate.py --out DIR [--notes 20000] [--seed 0]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import sys
import time
import unicodedata
from collections import Counter

from faker import Faker

CATEGORIES = ("NAME", "LOCATION", "DATE", "AGE", "PHONE", "FAX", "EMAIL", "SSN", "MRN", "HEALTH_PLAN",
              "ACCOUNT", "LICENSE", "VEHICLE", "DEVICE", "URL", "IP_ADDRESS", "ID_NUMBER", "ID")

# ------------------------------------------------------------------------------------------ locales
# (train/val, heldout): locale -> weight. Held-out locales never appear in train or val.
NAME_LOCALES = (
    {"en_US": 6, "en_GB": 3, "en_IN": 3, "en_AU": 2, "en_NZ": 1, "es_MX": 3, "de_DE": 2, "pt_BR": 2,
     "it_IT": 2, "pl_PL": 1, "nl_NL": 1, "ja_JP": 1, "zh_CN": 2, "ko_KR": 1, "yo_NG": 1, "sw": 1,
     "zu_ZA": 1, "ig_NG": 1, "ha_NG": 1, "en_KE": 1, "tw_GH": 1, "pacific": 1.5, "central_africa": 1},
    {"es_ES": 3, "fr_FR": 3, "vi_VN": 2, "tr_TR": 2, "zh_TW": 2},
)
ADDR_LOCALES = (
    {"en_US": 8, "en_GB": 3, "en_AU": 2, "en_IN": 2, "en_NZ": 1, "de_DE": 1, "it_IT": 1, "pt_BR": 1,
     "es_MX": 1, "pl_PL": 1},
    {"es_ES": 2, "fr_FR": 2, "vi_VN": 1},
)
ZH_LOCALES = ("zh_CN", "zh_TW")
POOL = 300
COUNTRY = {"en_US": "USA", "en_GB": "United Kingdom", "en_AU": "Australia", "en_IN": "India", "en_NZ": "New Zealand",
           "de_DE": "Germany", "it_IT": "Italy", "pt_BR": "Brazil", "es_MX": "Mexico", "pl_PL": "Poland",
           "es_ES": "Spain", "fr_FR": "France", "vi_VN": "Vietnam"}
KO_LAST = "Kim Lee Park Choi Jung Kang Cho Yoon Jang Lim Han Oh Seo Shin Kwon Hwang Ahn Song Yoo Hong".split()
KO_FIRST = ("Min-jun Seo-jun Do-yun Ji-ho Jae-won Hyun-woo Sung-min Dong-hyun Joon-young Tae-yang".split(),
            "Seo-yeon Ha-eun Ji-woo Soo-ah Ye-jin Eun-ji Min-seo Yu-na Hye-jin Ji-min".split())
ZH_COMPOUND = {"zh_CN": "欧阳 司马 诸葛 上官 东方 皇甫 令狐 慕容 尉迟 司徒 夏侯 公孙".split(),
               "zh_TW": "歐陽 司馬 諸葛 上官 東方 皇甫 令狐 慕容 尉遲 司徒 夏侯 公孫".split()}
NOT_ZH_CN_CITIES = {"台北", "台中", "台南", "高雄", "基隆", "新竹", "嘉义", "香港", "澳门"}  # zh_TW is held out
VI_MIDDLE = "Văn Thị Đức Minh Thanh Hồng Ngọc Quốc Hữu Kim".split()
# Hand-made name lists for origins Faker lacks (Tongan, Samoan, Fijian, Maori, Hawaiian; Congolese).
HAND_NAMES = {
    "pacific": (
        "Sione Viliami Siaosi Semisi Lopeti Taniela Paula Sitiveni Tomasi Etuate Isileli Mosese Kalolo Manu Tavita "
        "Iosefa Tui Ioane Sefo Malakai Josefa Epeli Jone Waisale Timoci Eroni Wiremu Hemi Rawiri Tamati Nikau Keoni "
        "Kekoa Makoa Kimo Ikaika Saia Folau Penisimani Soane Lisiate Fetuao Pita".split(),
        "Losaline Ana Salote Seini Lesieli Ofa Kalolaine Sulia Lupe Malia Litia Sela Vika Losana Mere Aroha Ngaio "
        "Moana Kahurangi Hine Leilani Keala Noelani Makana Lose Fetu Sina Teuila Aolele Mareta Asenaca Mereoni Unaisi "
        "Salanieta Vasiti Luseane Heilala Tupou Mafi".split(),
        "Taufa Tonga Vaipulu Latu Mafi Fonua Vea Taumalolo Lolohea Tupou Moala Kioa Funaki Helu Naufahu Tuipulotu "
        "Maka Pulu Vake Piutau Faleafa Leota Tuilagi Sapolu Aumua Fuimaono Soliai Tago Toleafoa Saena Masoe "
        "Lealaiauloto Faamausili Nakarawa Ravuvu Tuilevuka Vunipola Nadolo Waqa Rokotuiviwa Ngata Parata Tawhiri "
        "Herewini Takerei Kahananui Kealoha Kamakau Akana Hufanga Kaufusi Tapueluelu Fusitu'a Ahio".split()),
    "central_africa": (
        "Jean-Pierre Patrice Fiston Exauce Dieudonne Gloire Junior Blaise Tresor Papy Moise Christian Serge Hubert "
        "Aime Ngalula Lumbala Kalenga Mbuyamba Bienvenu Prince Fabrice Emmanuel Godefroid".split(),
        "Christelle Grace Merveille Divine Esperance Gracia Benedicte Nadege Chanceline Ruth Rachel Bijou Mamie "
        "Solange Clarisse Odette Nsimire Feza Neema Furaha Riziki Aline Sifa".split(),
        "Mbuyi Tshibangu Kalala Mukendi Kasongo Ngoy Mutombo Kabongo Lukusa Mwamba Banza Kazadi Nkulu Tshisekedi "
        "Kabeya Mulumba Ntumba Kanku Tshimanga Mpoyi Kabasele Mwilambwe Bakajika Kayembe Mukadi Lusamba Mbala "
        "Nzuzi Makiese Lutete Mayala Nsimba Kiala Mbemba Biduaya".split()),
}
# Foreign names in Chinese characters: common transliterations, and a syllable set for new ones.
ZH_FOREIGN_GIVEN = ("穆罕默德 玛丽亚 约翰 安娜 阿里 艾哈迈德 法蒂玛 约瑟夫 伊丽莎白 彼得 保罗 大卫 米歇尔 索菲亚 阿卜杜拉 "
                    "哈桑 侯赛因 萨拉 玛利亚姆 伊万 娜塔莎 奥列格 卡洛斯 胡安 路易斯 埃琳娜 阿玛尼 恩科西 克瓦米 阿玛 "
                    "科菲 伊布拉欣 尤素福 海伦 詹姆斯 迈克尔 托马斯 丹尼尔 杰西卡 艾米丽 奥卢 切迪 恩戈齐 西奥内 "
                    "洛帕蒂 萨洛特 塔尼埃拉 卡马乌").split()
ZH_FOREIGN_FAMILY = ("史密斯 约翰逊 冈萨雷斯 罗德里格斯 穆勒 施密特 伊万诺夫 彼得罗夫 奥孔科沃 阿德巴约 恩戈马 卡马拉 "
                     "迪亚洛 特拉奥雷 库马尔 辛格 帕特尔 汗 阿卜杜勒 姆武 卡松戈 奥蒂埃诺 基普罗蒂奇 陶法 富纳基 "
                     "图伊拉吉 瓦伊普卢 马菲 米勒 加西亚").split()
ZH_FOREIGN_SYL = ("阿 巴 卡 达 德 迪 多 杜 埃 法 菲 加 吉 古 哈 赫 胡 伊 贾 凯 科 库 拉 莱 利 卢 洛 马 梅 米 莫 "
                  "穆 纳 内 尼 诺 努 奥 帕 佩 皮 普 里 罗 鲁 萨 塞 西 索 苏 塔 特 蒂 托 图 瓦 维 沃 亚 耶 扎 泽 "
                  "兹 恩 姆 班 坦 丹 安 翁 比 波 基 克 斯 娜 莎 丽 雅 琳 妮 蒙 孔 贡 隆").split()


def _call(fk, *methods):
    for m in methods:
        fn = getattr(fk, m, None)
        if fn is not None:
            try:
                return fn()
            except (AttributeError, TypeError):
                continue
    raise AttributeError(methods)


def _draw(fn, k=POOL):
    seen = dict.fromkeys(fn() for _ in range(k))
    return [s.strip() for s in seen if s and s.strip()]


def _street(fk, loc):
    if loc == "fr_FR":
        return f"{fk.building_number()}{fk.random_element([', ', ' '])}{fk.street_name()}"
    if loc == "pt_BR":
        return f"{fk.street_name()}, {fk.building_number()}"
    return " ".join(fk.street_address().replace("\n", ", ").split())


def _addr(fk, loc):
    method = {"en_US": "state_abbr", "en_AU": "state_abbr", "en_IN": "state", "de_DE": "state", "it_IT": "state_abbr",
              "es_MX": "state", "pt_BR": "state_abbr", "pl_PL": "administrative_unit", "es_ES": "state",
              "fr_FR": "administrative_unit"}.get(loc)
    region = getattr(fk, method)() if method else None
    if loc == "en_US" and fk.random_int(0, 3) == 0:
        region = fk.state()
    return {"street": _street(fk, loc), "city": fk.city().strip(), "zip": fk.postcode().strip(),
            "region": region, "county": fk.county() if loc == "en_GB" else None}


def build_pools(seed):
    """Names and addresses per locale, drawn once (Faker is slow per call; sampling pools is fast)."""
    pools = {}
    locs = set(NAME_LOCALES[0]) | set(NAME_LOCALES[1]) | set(ADDR_LOCALES[0]) | set(ADDR_LOCALES[1]) | set(ZH_LOCALES)
    for i, loc in enumerate(sorted(locs)):
        fk = Faker(loc if loc not in ("ko_KR", *HAND_NAMES) else "en_US")
        for prov in fk.get_providers():  # it_IT builds its city list from a set: fix the order
            if isinstance(getattr(prov, "cities", None), list):
                prov.cities = sorted(prov.cities)
        fk.seed_instance(seed * 1000 + i)
        P = {}
        if loc == "ko_KR":
            P.update(last=KO_LAST, first_m=KO_FIRST[0], first_f=KO_FIRST[1])
        elif loc in HAND_NAMES:
            P.update(first_m=HAND_NAMES[loc][0], first_f=HAND_NAMES[loc][1], last=HAND_NAMES[loc][2])
        elif loc in ("zh_CN", "zh_TW", "ja_JP"):  # romanised, for English text
            fm = lambda: _call(fk, "first_name_male_romanized", "first_romanized_name")
            ff = lambda: _call(fk, "first_name_female_romanized", "first_romanized_name")
            P.update(last=_draw(lambda: fk.last_romanized_name().title()), first_m=_draw(lambda: fm().title()),
                     first_f=_draw(lambda: ff().title()))
        else:
            P.update(last=_draw(fk.last_name), first_m=_draw(fk.first_name_male), first_f=_draw(fk.first_name_female))
        if loc in ADDR_LOCALES[0] or loc in ADDR_LOCALES[1]:
            P["addr"] = [_addr(fk, loc) for _ in range(POOL)]
        if loc in ZH_LOCALES:
            tw = loc == "zh_TW"
            # Faker draws surnames by frequency; zlast_rare gives every single-character surname equal weight
            singles = [k for k in fk.provider("faker.providers.person").last_names if len(k) == 1]
            P.update(zlast=_draw(fk.last_name), zlast_rare=singles, zfirst_m=_draw(fk.first_name_male),
                     zfirst_f=_draw(fk.first_name_female),
                     zcity=[x for x in _draw(fk.city_name, 120) if x not in NOT_ZH_CN_CITIES and not x.endswith("盟")],
                     zstreet=_draw(fk.street_name if not tw else fk.street_address, 200))
            P["zdistrict"] = sorted({s.rstrip("市縣") for s in _draw(fk.city, 120)}) if tw else _draw(fk.district, 120)
            not_provinces = {"北京市", "上海市", "天津市", "重庆市", "台湾省", "香港特别行政区", "澳门特别行政区"}
            P["provinces"] = [] if tw else sorted({fk.province() for _ in range(200)} - not_provinces)
        pools[loc] = P
    pools["_text"] = build_text(seed)
    return pools


# ------------------------------------------------------------------------------------ filler text
# Non-PHI prose mixed into every note, so that most rare and capitalised words a tagger sees are not
# PHI. Word lists and sentence patterns are in vocab_en.txt and vocab_zh.txt next to this script;
# Faker adds general words, sentences, slogans, jobs, colours and organisation names.
HERE = os.path.dirname(os.path.abspath(__file__))
SLOT = re.compile(r"\{(\w+)\}")
TEMPLATE_SECTIONS = ("sentence", "chat_doctor", "chat_patient", "句子", "对话医", "对话患")
MONTH_WORDS = {m.lower() for m in "January February March April May June July August September October "
               "November December".split()}


def load_vocab(path):
    """'[section]' lines start a list; other non-empty, non-'#' lines are its items."""
    out, cur = {}, None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line[0] == "[" and line[-1] == "]":
                cur = out.setdefault(line[1:-1], [])
            else:
                cur.append(line)
    return out


class Filler:
    """Fills sentence patterns: "{slot}" takes an item of that list, "{Slot}" the item capitalised."""

    def __init__(self, lists, zh):
        self.zh = zh
        self.lists = {k: v for k, v in lists.items() if k not in TEMPLATE_SECTIONS}
        self.patterns = {k: [SLOT.split(t) for t in lists[k]] for k in TEMPLATE_SECTIONS if k in lists}
        for pats in self.patterns.values():
            for parts in pats:
                for key in parts[1::2]:
                    assert key.lower() in self.lists, f"unknown slot {{{key}}}"

    def sentence(self, rng, kind):
        parts = rng.choice(self.patterns[kind])
        out = [parts[0]]
        for i in range(1, len(parts), 2):
            key = parts[i]
            v = rng.choice(self.lists[key.lower()])
            out.append(v[:1].upper() + v[1:] if key[0].isupper() else v)
            out.append(parts[i + 1])
        s = "".join(out)
        return s if self.zh else s[:1].upper() + s[1:]

    def words(self, rng, keys, k):
        return [rng.choice(self.lists[rng.choice(keys)]) for _ in range(k)]


def build_text(seed):
    """The two Fillers, with Faker's text providers drawn once (en_US, en_GB, en_AU, zh_CN)."""
    en, zh = load_vocab(os.path.join(HERE, "vocab_en.txt")), load_vocab(os.path.join(HERE, "vocab_zh.txt"))
    fks = {}
    for i, loc in enumerate(("en_US", "en_GB", "en_AU", "zh_CN")):
        fks[loc] = Faker(loc)
        fks[loc].seed_instance(seed * 1000 + 900 + i)
    fe, fz = fks["en_US"], fks["zh_CN"]
    no_month = lambda s: not (set(re.findall(r"[a-z]+", s.lower())) & MONTH_WORDS)
    en["word"] = sorted(w for w in fe.get_words_list() if w not in MONTH_WORDS)
    en["faker"] = [s for s in _draw(lambda: fe.sentence(nb_words=fe.random_int(4, 12)), 1500) if no_month(s)]
    en["phrase"] = _draw(fe.catch_phrase, 400) + _draw(fe.bs, 400)
    en["job"] = sorted({j for loc in ("en_US", "en_GB", "en_AU") for j in _draw(fks[loc].job, 300)})
    en["job_lower"] = [j.lower() for j in en["job"]]
    en["color"] = _draw(fe.color_name, 200)
    en["color_lower"] = [c.lower() for c in en["color"]]
    suffix = ["Inc.", "LLC", "Ltd", "Group", "Solutions", "Health", "Logistics", "Foods", "Systems", "Partners"]
    en["org"] = en["company"] + [f"{fe.catch_phrase().split()[0]} {fe.random_element(suffix)}" for _ in range(200)]
    # zh_CN: words and company names without place names (Faker's lists contain some cities)
    cities = set(_draw(fz.city_name, 600)) | {"北京", "上海", "天津", "重庆", "中国"}
    has_city = lambda s: any(c in s for c in cities)
    zh["词"] = sorted(w for w in fz.get_words_list() if not has_city(w))
    zh["职业"] = _draw(fz.job, 300)
    zh["公司"] = [p + fz.company_suffix() for p in _draw(fz.company_prefix, 200) if not has_city(p)]
    return {"en": Filler(en, zh=False), "zh": Filler(zh, zh=True)}


# ------------------------------------------------------------------------------------- note builder
PUNCT = str.maketrans("", "", ",.?!;")
OCR_DIGIT = {"0": "O", "1": "l", "5": "S"}
OCR_SWAP = {"0": "O", "O": "0", "1": "l", "l": "1", "I": "1", "5": "S", "S": "5", "8": "B", "B": "8", "e": "c",
            "a": "o", "2": "Z", "6": "b"}


class Note:
    """Text built from plain pieces (str) and entity pieces ((category, value)); nested lists allowed."""

    def __init__(self, rng, case=None, ocr=0.0):
        self.rng, self.case, self.ocr, self.punct = rng, case, ocr, True
        self.parts, self.ents, self.n = [], [], 0
        self.hook, self.in_hook = None, False  # hook(): called after each plain piece ending a paragraph

    def _surface(self, s, span):
        if self.case == "lower":
            s = s.lower()
        elif self.case == "upper":
            s = s.upper()
        if not span and not self.punct:
            s = s.translate(PUNCT)
        if self.ocr:
            s = self._noise(s, self.ocr / 3 if span else self.ocr, span)
        return s

    def _noise(self, s, p, span):
        out, rand = [], self.rng.random
        for ch in s:
            x = rand()
            if x < p and ch in OCR_SWAP:
                out.append(OCR_SWAP[ch])
            elif not span and ch == " " and x < 3 * p:
                out.append(self.rng.choice(("  ", "\n", " \n", "   ")))
            else:
                out.append(ch)
        return "".join(out)

    def add(self, *pieces):
        for p in pieces:
            if p is None or p == "":
                continue
            if isinstance(p, str):
                s = self._surface(p, False)
                self.parts.append(s)
                self.n += len(s)
                if self.hook and not self.in_hook and p.endswith("\n\n"):
                    self.in_hook = True
                    self.hook()
                    self.in_hook = False
            elif isinstance(p, tuple):
                cat, v = p
                v = self._surface(v, True)
                assert cat in CATEGORIES and v and v == v.strip(), (cat, v)
                self.ents.append((self.n, self.n + len(v), cat, v))
                self.parts.append(v)
                self.n += len(v)
            else:
                self.add(*p)
        return self

    def record(self, lang, template, locale):
        text = "".join(self.parts)
        last = 0
        for s, e, cat, v in self.ents:
            assert text[s:e] == v and s >= last and e > s, (s, e, cat, v)
            last = e
        ents = [{"start": s, "end": e, "category": c} for s, e, c, _ in self.ents]
        return {"text": text, "entities": ents, "lang": lang, "template": template, "locale": locale}


# ----------------------------------------------------------------------------------- value patterns
DIG, UP = "0123456789", "ABCDEFGHJKLMNPRSTUVWXYZ"
ALNUM = DIG + UP


def fill(rng, pat):
    """'#' digit, '^' digit 1-9, '&' digit 2-9, '@' letter, '%' letter or digit; anything else is literal."""
    out = []
    for ch in pat:
        out.append(rng.choice(DIG) if ch == "#" else rng.choice(DIG[1:]) if ch == "^" else rng.choice(DIG[2:]) if ch == "&"
                   else rng.choice(UP) if ch == "@"
                   else rng.choice(ALNUM) if ch == "%" else ch)
    return "".join(out)


PHONE_FMT = {
    "en_US": ["(&##) &##-####", "&##-&##-####", "&##.&##.####", "+1 &## &## ####", "+1-&##-&##-####", "&##&######",
              "&## &## ####", "1-800-&##-####", "(&##)&##-####", "&##-555-01##", "(&##) 555-01##"],
    "en_GB": ["020 7946 0###", "+44 20 7946 0###", "07700 9#####", "+44 7700 9#####", "0161 496 0###", "01632 96####"],
    "en_AU": ["(02) 9### ####", "0412 ### ###", "+61 4## ### ###", "(03) 8### ####", "04## ### ###"],
    "en_NZ": ["09 ### ####", "021 ### ####", "+64 21 ### ####", "(04) ### ####"],
    "en_IN": ["+91 9#### #####", "9#########", "022-2### ####", "+91-80-2###-####", "0## 2### ####"],
    "de_DE": ["+49 30 ########", "030 ########", "0151 ########", "+49 (0)89 #######", "089/#######"],
    "it_IT": ["+39 06 #### ####", "333 ### ####", "02 #### ####", "+39 347 #######"],
    "pt_BR": ["(11) 9####-####", "+55 11 9####-####", "(21) ####-####", "11 9########"],
    "es_MX": ["55 #### ####", "+52 55 #### ####", "(33) #### ####", "+52 1 81 #### ####"],
    "pl_PL": ["+48 5## ### ###", "22 ### ## ##", "6## ### ###", "+48 22 ### ## ##"],
    "es_ES": ["91# ### ###", "+34 6## ## ## ##", "6## ### ###", "93 ### ## ##", "+34 91 ### ## ##"],
    "fr_FR": ["01 ## ## ## ##", "+33 6 ## ## ## ##", "06.##.##.##.##", "04 ## ## ## ##", "+33 (0)1 ## ## ## ##"],
    "vi_VN": ["09## ### ###", "+84 9## ### ###", "028 38## ####", "024 3### ####", "09########"],
    "zh_CN": ["13#########", "15#########", "18#########", "17#########", "138-####-####", "139 #### ####", "010-########",
              "(021)########",
              "+86 13# #### ####", "0755-########", "0571-8#######", "+86-10-########", "400-###-####"],
    "zh_TW": ["09##-###-###", "(02)2###-####", "02-2###-####", "+886 9## ### ###", "(04)2###-####", "09########"],
}
MRN_FMT = ["########", "MRN-###-####", "####-####-#", "@#######", "H-########", "^#####", "##-##-##", "^########",
           "M^##########", "E#######", "RX^####", "###-##-###", "^######-#", "^#######", "@@^######", "00^#####"]
ZH_MRN_FMT = ["ZY^#########", "^#########", "########", "^###########", "BA^#######", "00^######"]
ZH_OPD_FMT = ["MZ########", "^###########", "0########", "M^##########", "^########"]
PLAN_FMT = ["@@@#########", "W#########", "^@%#-@%#-@@##", "###-###-###", "@@@-#######-##", "H####-#####",
            "@##########", "^########@", "XE@#########", "ZG@#########"]
ZH_PLAN_FMT = ["YB##########", "1##########", "^##############", "@@##########"]
ACCT_FMT = ["#########", "^########-##", "ACCT-^######", "##-####-###", "^#########", "V^#######", "^###-####-##"]
ZH_ACCT_FMT = ["6222 0### #### ####", "6217 #### #### #### ###", "^###########", "JZ^#########"]
LIC_FMT = ["@-#####", "@@ ######", "^######", "@######", "MD^#####", "@@-^####", "RN^######", "^####-##"]
DEVICE_FMT = ["PJN######", "PJN ###### H", "%%%%-%%%-%%%%", "@@@######@", "^#########", "RNH######", "@@^#######",
              "SN%%%%%%%%%%", "^##-###-####", "@%%%%%%%%%%%", "@@@#######", "@@@ #######", "@@@-######-@",
              "#@@@####@", "@@#######@@", "%%%%%%%%%%%%%%"]
PASSPORT_FMT = ["E########", "G########", "@#######", "^########", "@@#######", "EA^#######", "@#######@", "@@@^######"]
OTHER_ID_FMT = ["ACC-##-######", "S##-#####", "A##-#####", "EMP-#####", "@@@@@@@@###@", "REQ-########",
                "#####-####-@", "SP##-####", "@@##-#####", "LAB^#######", "^######@@", "CX-^#####", "%%%%%%%%%%",
                "^@##-@##-@@##", "@@@@@@@###@@", "##-######", "@@@-#######", "#####@", "@@############",
                "@#######@", "##@@-####-@", "###-###-###-##", "@@/##/#####", "@@@#####@@"]
ZH_OTHER_ID_FMT = ["B##########", "^#########", "BL^######", "JY^#########", "TM########", "^###-#####"]
ZH_PLATE_PROV = "京沪粤浙苏鲁川鄂湘豫皖闽赣冀辽吉黑陕甘晋津渝桂云贵"
VIN_MAP = {**{str(i): i for i in range(10)}, **dict(zip("ABCDEFGH", range(1, 9))),
           **dict(zip("JKLMNPR", (1, 2, 3, 4, 5, 7, 9))),
           **dict(zip("STUVWXYZ", range(2, 10)))}
VIN_W = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
CN_AREAS = ("110101", "110105", "110108", "310104", "310115", "440103", "440305", "440106", "330106", "510104",
            "420102", "320102", "370102", "210102", "610103", "500103", "120101", "430102", "350102", "450102")
CN_ID_W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
TW_LETTER = dict(zip("ABCDEFGHJKLMNPQRSTUVXYWZIO", range(10, 36)))


def random_id(rng):
    """An identifier of a random shape: one to three groups of digits, letters or both."""
    groups = rng.choice((1, 1, 2, 2, 3))
    out = []
    for _ in range(groups):
        k = rng.randint(5, 13) if groups == 1 else rng.randint(2, 7)
        kind = rng.choice("dddlmmxy")
        if kind == "d":
            out.append(fill(rng, "#" * k))
        elif kind == "l":
            out.append(fill(rng, "@" * min(k, 4)))
        elif kind == "m":
            out.append(fill(rng, "%" * k))
        else:  # letters then digits, or digits then letters
            j = rng.randint(1, max(1, k // 2))
            out.append(fill(rng, "@" * j + "#" * (k - j) if kind == "x" else "#" * (k - j) + "@" * j))
    v = rng.choice(("-", "-", " ", "/", ".")).join(out)
    return v if any(ch.isdigit() for ch in v) and len(v) >= 5 else fill(rng, "@@#######")


def spell_out(rng, v):
    """Letter by letter, digits as words, as read aloud: 'P Z K seven seven one nine zero four'."""
    zero = rng.choice(("zero", "oh"))
    lower = rng.random() < .4
    out = [(zero if ch == "0" else ONES[int(ch)]) if ch.isdigit() else (ch.lower() if lower else ch)
           for ch in v if ch.isalnum()]
    return " ".join(out)


def luhn_digit(s):
    total = 0
    for i, ch in enumerate(reversed(s + "0")):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


def npi(rng):
    body = rng.choice("12") + fill(rng, "########")
    return body + luhn_digit("80840" + body)


def dea(rng, last):
    d = [rng.randrange(10) for _ in range(6)]
    check = (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10
    initial = unicodedata.normalize("NFKD", last)[0].upper()
    return rng.choice("ABFGM") + (initial if "A" <= initial <= "Z" else "X") + "".join(map(str, d)) + str(check)


def vin(rng):
    chars = [rng.choice("".join(VIN_MAP)) for _ in range(17)]
    chars[8] = "0"
    r = sum(VIN_MAP[c] * w for c, w in zip(chars, VIN_W)) % 11
    chars[8] = "X" if r == 10 else str(r)
    return "".join(chars)


def cn_resident_id(rng, born, female):
    seq = rng.randrange(0, 1000, 2) + (0 if female else 1)
    body = f"{rng.choice(CN_AREAS)}{born:%Y%m%d}{seq % 1000:03d}"
    return body + "10X98765432"[sum(int(a) * w for a, w in zip(body, CN_ID_W)) % 11]


def tw_id(rng, female):
    letter = rng.choice("ABCDEFGHJKLMNPQRSTUVXYWZIO")
    n = TW_LETTER[letter]
    digits = [2 if female else 1] + [rng.randrange(10) for _ in range(7)]
    s = n // 10 + (n % 10) * 9 + sum(d * w for d, w in zip(digits, (8, 7, 6, 5, 4, 3, 2, 1)))
    return letter + "".join(map(str, digits)) + str((10 - s % 10) % 10)


# ----------------------------------------------------------------------------------- spoken numbers
ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen " \
       "seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
ORD = {1: "first", 2: "second", 3: "third", 5: "fifth", 8: "eighth", 9: "ninth", 12: "twelfth"}


def words(n):
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("-" + ONES[n % 10] if n % 10 else "")
    return ONES[n // 100] + " hundred" + (" " + words(n % 100) if n % 100 else "")


def ordinal_words(n):
    if n in ORD:
        return ORD[n]
    if n > 20 and n % 10:
        return TENS[n // 10] + "-" + ordinal_words(n % 10)
    w = words(n)
    return w[:-1] + "ieth" if w.endswith("y") else w + "th"


def year_words(y):
    if 2000 <= y < 2010:
        return "two thousand" + (" " + ONES[y % 100] if y % 100 else "")
    hi, lo = divmod(y, 100)
    return words(hi) + " " + ("hundred" if lo == 0 else ("oh " + ONES[lo]) if lo < 10 else words(lo))


def spoken_digits(rng, s, zh=False):
    if zh:
        table = dict(zip(DIG, "零幺二三四五六七八九" if rng.random() < .5 else "零一二三四五六七八九"))
        return "".join(table.get(c, "，" if c in " -" else c) for c in s)
    zero = rng.choice(("oh", "zero"))
    out = [(zero if c == "0" else ONES[int(c)]) if c.isdigit() else "," for c in s if c.isdigit() or c in " -.)"]
    return " ".join(out).replace(" ,", ",").replace(",,", ",").strip(", ")


ZH_NUM = "零一二三四五六七八九"


def zh_number(n):
    if n < 10:
        return ZH_NUM[n]
    if n < 100:
        return ("" if n // 10 == 1 else ZH_NUM[n // 10]) + "十" + (ZH_NUM[n % 10] if n % 10 else "")
    return ZH_NUM[n // 100] + "百" + ("零" + ZH_NUM[n % 100] if 0 < n % 100 < 10 else zh_number(n % 100) if n % 100 else "")


# ------------------------------------------------------------------------------------------ dates
MONTHS = "January February March April May June July August September October November December".split()
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()


def _ord(n):
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


M = lambda d: MONTHS[d.month - 1]
EN_DATES = {
    "full": [lambda d: f"{d:%m/%d/%Y}", lambda d: f"{d.month}/{d.day}/{d.year}", lambda d: f"{d.month}/{d.day}/{d:%y}",
             lambda d: f"{d:%d/%m/%Y}", lambda d: d.isoformat(), lambda d: f"{M(d)} {d.day}, {d.year}",
             lambda d: f"{M(d)[:3]} {d.day}, {d.year}", lambda d: f"{M(d)[:3]}. {d.day}, {d.year}",
             lambda d: f"{d.day} {M(d)} {d.year}", lambda d: f"{d.day} {M(d)[:3]} {d.year}",
             lambda d: f"{d:%d}-{M(d)[:3].upper()}-{d.year}", lambda d: f"{d:%d}-{M(d)[:3].upper()}-{d:%y}",
             lambda d: f"{d:%d.%m.%Y}", lambda d: f"{DAYS[d.weekday()]}, {M(d)} {d.day}, {d.year}",
             lambda d: f"{M(d)} {_ord(d.day)}, {d.year}", lambda d: f"{_ord(d.day)} {M(d)} {d.year}",
             lambda d: f"{d:%m-%d-%Y}", lambda d: f"{d:%Y/%m/%d}", lambda d: f"{d:%d/%m/%y}", lambda d: f"{d:%Y%m%d}",
             lambda d: f"{M(d).lower()} {_ord(d.day)} {d.year}"],
    "short": [lambda d: f"{d.month}/{d.day}", lambda d: f"{M(d)} {d.day}", lambda d: f"{M(d)} {_ord(d.day)}",
              lambda d: f"the {_ord(d.day)} of {M(d)}", lambda d: f"{M(d)[:3]} {d.day}", lambda d: f"{d.day} {M(d)}",
              lambda d: f"{d:%m/%d}", lambda d: f"{M(d).lower()} {_ord(d.day)}", lambda d: f"{d.day}/{d.month}"],
    "monthname": [lambda d: M(d), lambda d: M(d), lambda d: M(d).lower(), lambda d: M(d)[:3]],
    "month": [lambda d: f"{M(d)} {d.year}", lambda d: f"{d:%m/%Y}", lambda d: f"{M(d)[:3]} {d.year}"],
    "spoken": [lambda d: f"{M(d)} {ordinal_words(d.day)}, {year_words(d.year)}",
               lambda d: f"the {ordinal_words(d.day)} of {M(d)} {year_words(d.year)}",
               lambda d: f"{M(d)} {ordinal_words(d.day)}", lambda d: f"{M(d)} {d.day} {year_words(d.year)}"],
}
LUNAR_MONTHS = "正 二 三 四 五 六 七 八 九 十 冬 腊".split()


def lunar_day(n):
    """A day of a lunar month as said: 初八, 十五, 廿三, 三十."""
    n = min(n, 30)
    return "初" + zh_number(n) if n <= 10 else zh_number(n) if n % 10 == 0 or n < 20 else "廿" + ZH_NUM[n % 10] if n < 30 \
        else zh_number(n)


ZH_DATES = {
    "full": [lambda d: f"{d.year}年{d.month}月{d.day}日", lambda d: d.isoformat(), lambda d: f"{d.year}/{d.month}/{d.day}",
             lambda d: f"{d:%Y.%m.%d}", lambda d: f"{d:%Y}年{d:%m}月{d:%d}日", lambda d: f"{d:%Y/%m/%d}",
             lambda d: f"{d:%Y%m%d}",
             lambda d: "".join("〇一二三四五六七八九"[int(c)] for c in str(d.year)) + f"年{zh_number(d.month)}月{zh_number(d.day)}日"],
    "short": [lambda d: f"{d.month}月{d.day}日", lambda d: f"{d.month}月{d.day}号", lambda d: f"{d:%m-%d}",
              lambda d: f"{d.month}.{d.day}", lambda d: f"{d.month}/{d.day}"],
    "monthname": [lambda d: f"{d.month}月", lambda d: f"{zh_number(d.month)}月"],
    "month": [lambda d: f"{d.year}年{d.month}月", lambda d: f"{d:%Y-%m}"],
    "lunar": [lambda d: f"{LUNAR_MONTHS[d.month - 1]}月{lunar_day(d.day)}", lambda d: lunar_day(min(d.day, 10)),
              lambda d: f"大年{lunar_day(min(d.day, 10))}", lambda d: f"{LUNAR_MONTHS[d.month - 1]}月{lunar_day(d.day)}"],
    "roc": [lambda d: f"民國{d.year - 1911}年{d.month}月{d.day}日", lambda d: f"{d.year - 1911}/{d:%m/%d}",
            lambda d: f"{d.year - 1911}年{d.month}月{d.day}日", lambda d: f"{d.year - 1911}.{d:%m.%d}"],
}

# ----------------------------------------------------------------------------------- word banks
EN_DX = ["community-acquired pneumonia", "CHF exacerbation", "COPD exacerbation", "NSTEMI", "acute kidney injury",
         "left lower extremity cellulitis", "diabetic ketoacidosis", "small bowel obstruction", "acute cholecystitis",
         "urosepsis", "atrial fibrillation with RVR", "acute ischemic stroke", "right hip fracture", "pulmonary embolism",
         "upper GI bleed", "syncope", "hyponatremia", "acute pancreatitis", "C. diff colitis", "delirium"]
EPONYMS = ["Parkinson's disease", "Alzheimer's disease", "Hodgkin lymphoma", "Crohn's disease", "Graves' disease",
           "Hashimoto's thyroiditis", "Cushing's syndrome", "Bell's palsy", "Guillain-Barré syndrome",
           "Sjögren's syndrome", "Barrett's esophagus", "Addison's disease", "Wilson's disease", "Raynaud's phenomenon",
           "Meniere's disease", "Paget's disease", "Huntington's disease", "Kawasaki disease", "Hirschsprung disease"]
EN_PMH = ["HTN", "DM2", "CKD stage 3", "COPD", "CHF (EF 35%)", "CAD s/p CABG", "hyperlipidemia", "OSA on CPAP",
          "GERD", "osteoarthritis", "depression", "hypothyroidism", "atrial fibrillation", "BPH", "gout", "asthma"]
EN_CC = ["shortness of breath", "chest pain", "abdominal pain", "fever and cough", "a fall at home", "confusion",
         "leg swelling", "nausea and vomiting", "palpitations", "dizziness", "hematuria", "productive cough"]
EN_MEDS = ["metoprolol succinate 25 mg PO daily", "lisinopril 10 mg daily", "apixaban 5 mg BID", "furosemide 40 mg IV BID",
           "atorvastatin 40 mg nightly", "metformin 500 mg BID", "insulin glargine 20 units qHS", "ceftriaxone 1 g IV q24h",
           "amoxicillin-clavulanate 875 mg BID x 7 days", "pantoprazole 40 mg daily", "levothyroxine 75 mcg daily",
           "acetaminophen 650 mg q6h PRN", "oxycodone 5 mg q4h PRN pain", "warfarin 5 mg daily (INR goal 2-3)",
           "aspirin 81 mg daily", "prednisone 40 mg x 5 days", "vancomycin 1.25 g IV q12h", "heparin 5000 units SC TID",
           "albuterol 2 puffs q4h PRN", "tamsulosin 0.4 mg qHS", "sertraline 50 mg daily", "carbidopa-levodopa 25/100 TID"]
EN_PROC = ["laparoscopic cholecystectomy", "right total hip arthroplasty",
           "open reduction internal fixation, left distal radius",
           "dual-chamber pacemaker implantation", "exploratory laparotomy with small bowel resection",
           "laparoscopic appendectomy", "left carotid endarterectomy", "Whipple procedure", "Nissen fundoplication",
           "transurethral resection of the prostate", "Hartmann's procedure"]
EN_IMAGING = ["CT chest with contrast", "CT head without contrast", "MRI brain with and without gadolinium",
              "Chest X-ray, PA and lateral", "CT abdomen/pelvis with IV contrast", "Ultrasound, right upper quadrant",
              "MRI lumbar spine", "CTA chest (PE protocol)", "Bilateral lower extremity venous duplex"]
EN_FIND = ["No acute intracranial hemorrhage.", "Small left pleural effusion with adjacent atelectasis.",
           "Gallbladder wall thickening with pericholecystic fluid.",
           "Filling defect in a right lower lobe segmental artery.",
           "Mild multilevel degenerative disc disease, most pronounced at L4-L5.", "No focal consolidation.",
           "Cardiomegaly with pulmonary vascular congestion.", "Stable 4 mm nodule in the right upper lobe.",
           "Chronic small vessel ischemic changes.", "No deep venous thrombosis."]
DEVICE_MODELS = ["model L331 lead", "Medtronic Azure XT DR pacemaker", "Dexcom G7 sensor", "Philips DreamStation CPAP",
                 "Boston Scientific Accolade MRI", "Omnipod 5 pump", "Abbott Assurity MRI pacemaker", "Zoll LifeVest 4000"]
EN_TRAPS = ["Glasgow Coma Scale 15", "GCS 14 (E4V4M6)", "Apgar score 9", "Murphy's sign positive", "Babinski sign absent",
            "Foley catheter in place", "Wells score 2", "CHA2DS2-VASc score 4", "Morse Fall Scale 45", "Braden score 16",
            "NYHA class III", "Mallampati II", "Romberg negative", "McMurray test negative", "Jackson-Pratt drain",
            "Swan-Ganz catheter", "strength 4/5 in the left leg", "2/6 systolic murmur", "visual acuity 20/40",
            "model L331 lead", "Medtronic Azure XT DR pacemaker", "Dexcom G7 sensor", "Philips DreamStation CPAP",
            "pain 6/10", "Parkinson's disease", "Foley catheter", "A1c 7.2%", "ratio 25/100", "1/2 tablet", "EF 35-40%",
            "QTc 462 ms", "PHQ-9 score 12", "MMSE 24/30"]
DEPTS = ["the Neurology Clinic", "Cardiology", "the Emergency Department", "the Oncology Clinic", "Internal Medicine",
         "the MICU", "Orthopaedics", "the Wound Care Clinic", "Physical Therapy", "the Heart Failure Clinic",
         "Endocrinology", "the Anticoagulation Clinic", "Social Work", "Palliative Care"]
STATES = ["Texas", "OH", "California", "NY", "Florida", "Ontario", "Queensland", "Bavaria", "Punjab", "Jalisco",
          "Mexico", "India", "Canada", "the Philippines", "Germany", "Brazil", "China", "Poland", "Nigeria"]
FAC_EN = ["{city} General Hospital", "{city} Medical Center", "St. {first}'s Hospital", "{last} Memorial Hospital",
          "{city} Community Health Center", "{adj} Family Clinic", "{adj} Manor Nursing Home", "{last} Elementary School",
          "{city} High School", "{adj} Rehabilitation Center", "Mercy Hospital {city}", "{city} Regional Medical Center",
          "{adj} Care Home", "{last} Children's Hospital", "{city} Dialysis Center", "{adj} Hospice",
          "{adj} Assisted Living", "{city} Urgent Care", "{last} Middle School", "{adj} Skilled Nursing Facility"]
FAC_CARE = [f for f in FAC_EN if any(w in f for w in ("Nursing", "Care Home", "Rehabilitation", "Hospice", "Assisted"))]
ADJ = ["Lakeside", "Riverside", "Oakwood", "Maplewood", "Sunrise", "Pine Ridge", "Cedar Hills", "Green Valley", "Westview",
       "Harbor View", "Brookdale", "Silver Creek", "Highland", "Meadowbrook", "Willow Park", "Rosewood", "Stonebridge"]
EMAIL_DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "comcast.net", "icloud.com", "aol.com",
                 "proton.me", "btinternet.com", "web.de", "libero.it", "uol.com.br", "wp.pl", "bigpond.com"]
ZH_EMAIL_DOMAINS = ["163.com", "qq.com", "126.com", "sina.com", "139.com", "foxmail.com", "yeah.net", "gmail.com"]
FILLERS = ["um, ", "uh, ", "so ", "okay, ", "yeah, ", "you know, ", "well, ", "mm-hmm, ", "right, ", "oh, ", ""]

ZH_DX = ["社区获得性肺炎", "2型糖尿病", "高血压病3级（很高危）", "冠状动脉粥样硬化性心脏病", "慢性阻塞性肺疾病急性加重",
         "急性胆囊炎", "脑梗死", "帕金森病", "Graves病", "桥本甲状腺炎", "慢性肾脏病4期", "上消化道出血", "心房颤动",
         "急性心力衰竭", "腰椎间盘突出症", "阿尔茨海默病", "克罗恩病", "肺癌术后", "急性阑尾炎", "泌尿系感染"]
ZH_CC = ["胸闷气短", "反复咳嗽咳痰", "上腹痛", "头晕乏力", "发热", "双下肢水肿", "言语不清伴右侧肢体无力", "心悸", "腹泻", "胸痛"]
ZH_MEDS = ["阿司匹林100mg qd", "二甲双胍0.5g tid", "阿托伐他汀20mg qn", "美托洛尔缓释片47.5mg qd", "胰岛素12U 皮下注射",
           "头孢曲松2g ivgtt qd", "奥美拉唑40mg qd", "呋塞米20mg iv", "氯吡格雷75mg qd", "左甲状腺素钠50μg qd",
           "多巴丝肼0.125g tid", "硝苯地平控释片30mg qd"]
ZH_TRAPS = ["血压150/90mmHg", "心率88次/分", "体温37.8℃", "GCS 15分", "血钠138mmol/L", "肌酐132μmol/L", "BNP 1240pg/ml",
            "WBC 12.3×10^9/L", "Hb 98g/L", "NYHA心功能III级", "Barthel指数60分", "Morse评分45分", "留置Foley导尿管",
            "巴宾斯基征阴性", "墨菲征阳性", "肌力4/5级", "SpO2 95%", "空腹血糖7.8mmol/L", "HbA1c 8.1%", "EF 45%"]
ZH_DEPTS = ["心内科", "呼吸科", "急诊科", "神经内科", "内分泌科", "普外科", "骨科", "消化内科", "肾内科", "ICU", "老年科",
            "肿瘤科", "康复科", "感染科"]
ZH_NEG_FAC = ["当地医院", "我院", "上级医院", "外院", "社区医院", "当地卫生院", "第一人民医院"]
ZH_FAC = {"zh_CN": ["{city}市第一人民医院", "{city}市中心医院", "{city}市人民医院", "{city}医科大学附属第二医院",
                    "{city}市{district}区社区卫生服务中心", "{city}市妇幼保健院", "{city}市中医院", "{city}市{district}区实验小学",
                    "{city}市第三中学", "{city}市康宁养老院", "{city}市{district}区人民医院", "{city}协和医院"],
          "zh_TW": ["{city}榮民總醫院", "{city}長庚紀念醫院", "{city}市立聯合醫院", "{city}國民小學", "{city}基督教醫院",
                    "{city}慈濟醫院", "{city}安養中心", "{city}高級中學"]}
ZH_CHAINS = ["物美", "永辉超市", "华联", "沃尔玛", "家乐福", "盒马", "大润发", "联华超市", "苏宁", "万达广场", "银泰", "全家",
             "美宜佳", "京客隆", "超市发", "好又多"]
ZH_REL = {"F": ["女儿", "配偶", "妻子", "母亲", "孙女", "姐姐"], "M": ["儿子", "配偶", "丈夫", "父亲", "孙子", "外甥"]}
EN_REL = {"F": ["daughter", "wife", "mother", "sister", "niece", "granddaughter"],
          "M": ["son", "husband", "father", "brother", "nephew", "grandson"]}


def pick_w(rng, table):
    """Weighted choice from [(item, weight), ...] or {item: weight}."""
    items = list(table.items()) if isinstance(table, dict) else table
    return rng.choices([i for i, _ in items], [w for _, w in items])[0]


def ascii_fold(s):
    return "".join(c for c in unicodedata.normalize("NFKD", s) if c.isascii() and (c.isalnum() or c in ".-_")).lower()


# ------------------------------------------------------------------------------------------ context
class Ctx:
    """Per-note choices: locales, people, dates, formats; and helpers that return pieces."""

    def __init__(self, rng, pools, held, lang):
        self.r, self.P, self.held, self.lang = rng, pools, held, lang
        self.T = pools["_text"]
        self.name_locs, self.addr_locs = NAME_LOCALES[held], ADDR_LOCALES[held]
        self.zloc = ZH_LOCALES[held]
        self.aloc = pick_w(rng, self.addr_locs)
        self.visit = dt.date(2012, 1, 1) + dt.timedelta(rng.randrange(14 * 365))
        self.pref = {k: rng.randrange(len(v)) for k, v in EN_DATES.items()}
        # a note's usual date format (never the 〇 numerals one)
        self.zpref = {k: rng.randrange(len(v) - (k == "full")) for k, v in ZH_DATES.items()}
        self.hstyle = rng.randrange(6)
        zh_pt = lang == "zh" or (lang == "mixed" and self.chance(.6))
        self.pt = self.person(loc=self.zloc if zh_pt else pick_w(rng, self.name_locs), zh=zh_pt)
        self.locale = self.pt["loc"] if not zh_pt or lang == "zh" else self.zloc
        age = rng.randint(90, 104) if self.chance(.3) else rng.randint(18, 89)
        self.pt["age"] = age
        self.pt["dob"] = self.visit - dt.timedelta(days=age * 365 + rng.randrange(365))

    # -- basics
    def chance(self, p):
        return self.r.random() < p

    def pick(self, seq):
        return self.r.choice(seq)

    def fill(self, pat):
        return fill(self.r, pat)

    def day(self, lo=0, hi=None):
        return self.visit + dt.timedelta(self.r.randint(lo, lo if hi is None else hi))

    # -- people
    def person(self, loc=None, zh=None, sex=None):
        """A person: Chinese characters (zh) or a name from one of the note's name locales; others
        in the note share the patient's locale half the time."""
        r = self.r
        sex = sex or r.choice("MF")
        if zh is None:
            zh = self.lang == "zh" or (self.lang == "mixed" and self.chance(.5))
        if zh:
            if self.chance(.06):
                return self.zh_foreign(sex)
            P = self.P[self.zloc]
            x = r.random()
            last = (r.choice(ZH_COMPOUND[self.zloc]) if x < .06 else r.choice(P["zlast_rare"]) if x < .3
                    else r.choice(P["zlast"]))
            first = r.choice(P["zfirst_m" if sex == "M" else "zfirst_f"])
            return {"zh": True, "first": first, "last": last, "sex": sex, "loc": self.zloc, "mi": r.choice(UP),
                    "py": (r.choice(P["first_m" if sex == "M" else "first_f"]), r.choice(P["last"]))}
        if loc is None:
            pt = getattr(self, "pt", None)
            loc = pt["loc"] if pt and not pt["zh"] and self.chance(.5) else pick_w(r, self.name_locs)
        P = self.P[loc]
        first, last = r.choice(P["first_m" if sex == "M" else "first_f"]), r.choice(P["last"])
        if loc in ("es_MX", "es_ES") and self.chance(.4):
            last = f"{last}{self.pick([' ', '-'])}{r.choice(P['last'])}"
        p = {"zh": False, "first": first, "last": last, "sex": sex, "loc": loc, "mi": r.choice(UP)}
        if loc == "vi_VN" and self.chance(.5):
            p["vi_mid"] = r.choice(VI_MIDDLE)
        return p

    def zh_foreign(self, sex):
        """A foreign name written in Chinese characters: 玛丽亚, 穆罕默德·阿里, or a new transliteration."""
        r = self.r
        syl = lambda: "".join(r.choice(ZH_FOREIGN_SYL) for _ in range(r.randint(2, 4)))
        given = r.choice(ZH_FOREIGN_GIVEN) if self.chance(.5) else syl()
        family = r.choice(ZH_FOREIGN_FAMILY) if self.chance(.5) else syl()
        full = pick_w(r, {given: 2, f"{given}·{family}": 3, f"{given}•{family}": .5, family: 1})
        P = self.P[pick_w(r, self.name_locs)]
        return {"zh": True, "foreign": True, "first": given, "last": family if full != given else given, "zfull": full,
                "sex": sex, "loc": self.zloc, "mi": r.choice(UP),
                "py": (r.choice(P["first_m" if sex == "M" else "first_f"]), r.choice(P["last"]))}

    def nform(self, p, form):
        f, l = p["first"], p["last"]
        if form == "FL" and "vi_mid" in p:
            return f"{l} {p['vi_mid']} {f}"
        if form == "DICOM":
            return self.pick([f"{l.upper()}^{f.upper()}", f"{l.upper()}^{f.upper()}^{p['mi']}", f"{l}^{f}"])
        if form == "SPELL":
            return self.pick([" ", " ", "-", ". "]).join(ch for ch in self.pick([f, l]).lower() if ch.isalpha())
        return {"FL": f"{f} {l}", "FML": f"{f} {p['mi']}. {l}", "L": l, "F": f, "IL": f"{f[0]}. {l}",
                "LF": f"{l}, {f}", "LFU": f"{l.upper()}, {f.upper()}", "FLU": f"{f.upper()} {l.upper()}",
                "INI": self.pick([f"{f[0]}{l[0]}", f"{f[0]}.{l[0]}.", f"{f[0]}.{p['mi']}.{l[0]}."]),
                "LFI": f"{l}, {f[0]}.", "FU": f.upper(), "LU": l.upper(), "fl": f"{f} {l}".lower(), "f": f.lower(),
                "l": l.lower(), "ini": self.pick([f"{f[0]}{p['mi']}{l[0]}", f"{f[0]}{l[0]}"]).lower()}[form]

    def title(self, p):
        return self.pick(["Mr. ", "Mr "] if p["sex"] == "M" else ["Mrs. ", "Ms. ", "Miss ", "Ms "])

    def who(self, p, role="pt", full=False):
        """A mention of p as pieces: titles and credentials stay outside the NAME span."""
        if p["zh"] and (self.lang == "zh" or self.lang == "mixed" and self.chance(.7)):
            return self.zwho(p, role, full)
        if p["zh"]:  # a Chinese person written in pinyin (mixed notes)
            p = {**p, "zh": False, "first": p["py"][0], "last": p["py"][1]}
        N = lambda form: ("NAME", self.nform(p, form))
        r = self.r
        if role == "clin":
            form = pick_w(r, {"FL": 3, "L": 3, "IL": 1, "FML": 1, "LFI": .3})
            pre = pick_w(r, {"Dr. ": 5, "Dr ": 1, "": 3, "Doctor ": .5, "Prof. ": .3})
            if not pre and form in ("L", "LFI"):
                pre = "Dr. "
            suf = self.pick([", MD", ", M.D.", " MD", ", DO", ", MBBS", ", FRCS", ", PhD", ", MD, PhD", ", NP", ", PA-C",
                             ", FACC", ", MRCP"]) if not pre or self.chance(.15) else ""
            return [pre, N(form), suf]
        if role == "nurse":
            return pick_w(r, [([N("FL"), self.pick([", RN", " RN", ", BSN, RN", ", LPN", " (RN)", ", CNA"])], 3),
                              (["RN ", N("FL")], 1), (["Nurse ", N(self.pick(["F", "L"]))], 1), ([N("F")], 1),
                              ([N("IL"), ", RN"], .5)])
        if role == "rel":
            return pick_w(r, [([N("F")], 3), ([N("FL")], 3), ([self.title(p), N("L")], 1), ([N("FLU")], .2),
                              ([N("FU")], .2), ([N("f")], .1)])
        if full:
            return pick_w(r, [([N("FL")], 6), ([N("FML")], 2), ([N("LF")], 1), ([N("LFU")], 2), ([N("FLU")], .5),
                              ([self.title(p), N("FL")], 1.5), ([N("LFI")], .3), ([N("DICOM")], 1), ([N("LU")], .2),
                              ([N("FU")], .15), ([N("fl")], .1)])
        return pick_w(r, [([self.title(p), N("L")], 4), ([N("FL")], 2), ([N("F")], 1.5), ([N("INI")], .3),
                          (["the patient"], 1.5), (["pt"], .3), ([N("L")], .4)])

    def zfull(self, p):
        return p.get("zfull", p["last"] + p["first"])

    def zwho(self, p, role="pt", full=False):
        full_name, last = self.zfull(p), p["last"]
        r = self.r
        if role != "clin" and not p.get("foreign") and self.chance(.06):  # 阿梅: a nickname, marked whole
            return [("NAME", "阿" + p["first"][-1])]
        if role == "clin":
            return pick_w(r, [([("NAME", full_name)], 4),
                              ([("NAME", full_name), self.pick(["主任医师", "副主任医师", "医师", "主治医师"])], 1),
                              ([("NAME", last), self.pick(["医生", "主任", "大夫", "教授", "医师", "院长", "老师"])], 3)])
        if role == "nurse":
            return pick_w(r, [([("NAME", full_name)], 3), (["护士", ("NAME", full_name)], 1), ([("NAME", last), "护士"], 1),
                              (["小", ("NAME", last)], .5), ([("NAME", last), "护士长"], .5)])
        if role == "rel" or full:
            return pick_w(r, [([("NAME", full_name)], 5), ([("NAME", last), "女士" if p["sex"] == "F" else "先生"], 1)])
        return pick_w(r, [([("NAME", full_name)], 3), ([("NAME", last), self.pick(["女士", "阿姨", "老人"] if p["sex"] == "F"
                                                                                 else ["先生", "老人", "师傅"])], 2),
                          (["患者"], 3), (["老", ("NAME", last)], .3), (["患者", ("NAME", full_name)], 1)])

    def relative(self, zh=None):
        """(relation word, person) with matching sex."""
        q = self.person(zh=zh)
        return self.pick((ZH_REL if q["zh"] or zh else EN_REL)[q["sex"]]), q

    def pronoun(self, p, cap=False):
        s = "he" if p["sex"] == "M" else "she"
        return s.capitalize() if cap else s

    def poss(self, p):
        return "his" if p["sex"] == "M" else "her"

    # -- dates and ages
    def date(self, d, kind="full", zh=None):
        zh = self.lang == "zh" if zh is None else zh
        if zh:
            if self.zloc == "zh_TW" and kind == "full" and d.year > 1925 and self.chance(.3):
                kind = "roc"
            fmts, pref = ZH_DATES[kind], self.zpref[kind]
        else:
            fmts, pref = EN_DATES[kind], self.pref[kind]
        v = (fmts[pref] if self.chance(.7) else self.pick(fmts))(d)
        if not zh and self.chance(.06):
            v = v.lower()
        if self.chance(.04):  # OCR-style O/0 and l/1 confusions in an otherwise clean note
            v = "".join(OCR_DIGIT.get(ch, ch) if self.chance(.5) else ch for ch in v)
        return ("DATE", v)

    def age(self, a=None, zh=None, spoken=False, lead=True):
        """An age as pieces; lead=False leaves out forms that start with a word ('aged', "i'm")."""
        a = self.pt["age"] if a is None else a
        zh = self.lang == "zh" if zh is None else zh
        num = lambda s: ("AGE", s) if a > 89 else s
        if zh:
            return pick_w(self.r, [([num(str(a)), "岁"], 8), ([num(zh_number(a)), "岁"], 1.5), ([num(str(a)), "周岁"], 1)])
        if spoken:
            w = words(a) if self.chance(.6) else words(a).replace("-", " ")
            return pick_w(self.r, [([num(w), self.pick([" years old", "", " next month", " years"])], 4),
                                   (["aged ", num(w)], lead), (["i'm ", num(w)], .5 * lead), (["age ", num(w)], .5 * lead)])
        return pick_w(self.r, [([num(str(a)), "-year-old"], 6), ([num(str(a)), " y/o"], 2), ([num(str(a)), " yo"], 1),
                               ([num(str(a)), " years old"], 1), (["aged ", num(str(a))], 1.5), ([num(str(a)), "-yr-old"], .5),
                               ([num(str(a)), " y.o."], .5), ([num(str(a)), "yo"], .3), ([num(str(a)), " YO"], .3)])

    def age_phrase(self, a=None):
        """A bare age after a word: 'age 91', 'aged 91', 'Age: 91', 'aged ninety-one'."""
        a = self.pt["age"] if a is None else a
        v = words(a) if self.chance(.2) else str(a)
        return [self.pick(["age ", "aged ", "Age: ", "age: ", "at age ", "Aged "]), ("AGE", v) if a > 89 else v]

    def age_num(self, a=None, zh=False):
        a = self.pt["age"] if a is None else a
        v = zh_number(a) if zh else str(a)
        return ("AGE", v) if a > 89 else v

    def sex(self, p=None, zh=False):
        p = p or self.pt
        if zh:
            return "男" if p["sex"] == "M" else "女"
        return self.pick(["male", "man", "gentleman", "M"] if p["sex"] == "M" else ["female", "woman", "lady", "F"])

    def year_alone(self):
        return str(self.visit.year - self.r.randint(1, 25))

    # -- places
    def addr(self):
        return self.pick(self.P[self.aloc]["addr"])

    def address(self, a=None, multiline=False, loc=None):
        a, loc = a or self.addr(), loc or self.aloc
        sep = "\n" if multiline else self.pick([", ", ", ", " "])
        S, C, Z = ("LOCATION", a["street"]), ("LOCATION", a["city"]), ("LOCATION", a["zip"])
        reg = a["region"]
        if loc in ("de_DE", "fr_FR", "es_ES", "it_IT", "pl_PL"):
            out = [S, sep, Z, " ", C] + ([", ", reg] if reg and self.chance(.3) else [])
        elif loc == "en_GB":
            out = [S, sep, C] + ([sep, ("LOCATION", a["county"])] if self.chance(.4) else []) + [sep, Z]
        elif loc == "vi_VN":
            out = [S, sep, C]
        elif loc == "en_NZ":
            out = [S, sep, C, " ", Z]
        else:
            out = [S, sep, C, ", ", reg, " ", Z] if reg else [S, sep, C, " ", Z]
        if self.chance(.15):
            out += [sep, COUNTRY[loc]]
        return out

    def city(self):
        return ("LOCATION", self.addr()["city"])

    def facility(self, zh=None, kind=None):
        """A named facility; kind "hosp" (hospitals only) or "care" (nursing homes, rehab, hospice)."""
        hosp = kind == "hosp"
        zh = self.lang == "zh" if zh is None else zh
        if zh:
            P = self.P[self.zloc]
            pats = [f for f in ZH_FAC[self.zloc] if not hosp or f.endswith("院")]
            return ("LOCATION", self.pick(pats).format(city=self.pick(P["zcity"]), district=self.pick(P["zdistrict"])))
        nl = self.P[pick_w(self.r, self.name_locs)]
        pats = FAC_EN[:4] if hosp else FAC_CARE if kind == "care" else FAC_EN
        return ("LOCATION", self.pick(pats).format(city=self.addr()["city"], first=self.pick(nl["first_m"] + nl["first_f"]),
                                                     last=self.pick(nl["last"]), adj=self.pick(ADJ)))

    def zaddress(self):
        """Chinese address: a province is left unmarked; city through room is one span."""
        P, r = self.P[self.zloc], self.r
        if self.zloc == "zh_TW":
            span = (r.choice(P["zcity"]) + self.pick(["市", "縣", "市"]) + r.choice(P["zdistrict"]) + self.pick(["區", "鄉", "鎮"])
                    + r.choice(P["zstreet"]) + self.pick(["", "", f"{r.randint(2, 15)}樓", f"之{r.randint(1, 9)}"]))
            return [("LOCATION", span)]
        prov = self.pick(P["provinces"]) if self.chance(.5) else ""
        span = f"{r.choice(P['zcity'])}市{r.choice(P['zdistrict'])}区{r.choice(P['zstreet'])}{r.randint(1, 999)}号" + \
               self.pick(["", "", f"{r.randint(1, 30)}栋{r.randint(1, 30)}{r.randint(0, 2)}{r.randint(1, 9)}室",
                          f"{r.randint(1, 20)}号楼{r.randint(1, 6)}单元{r.randint(101, 2808)}室", f"{self.pick('ABCDE')}座"])
        return [prov, ("LOCATION", span)]

    def province(self):
        provs = self.P[self.zloc]["provinces"]
        return self.pick(provs) if provs and self.chance(.5) else ""

    def zcity(self):
        return ("LOCATION",
                self.pick(self.P[self.zloc]["zcity"]) + self.pick(["市", "市", "縣" if self.zloc == "zh_TW" else "市"]))

    # -- numbers
    def cc(self, zh=None):
        zh = self.lang == "zh" if zh is None else zh
        return self.zloc if zh else self.aloc

    def phone(self, cat="PHONE", zh=None, spoken=False):
        pat = self.pick(PHONE_FMT[self.cc(zh)])
        v = self.fill(pat)
        if spoken:
            v = spoken_digits(self.r, v, zh=bool(zh if zh is not None else self.lang == "zh"))
        return (cat, v)

    def email(self, p=None):
        p = p or self.pt
        if p["zh"]:
            user = self.pick(["wang", "li", "zhang", "liu", "chen", "yang", "huang", "zhao", "wu", "zhou", "xu", "lin"]) + \
                   self.pick(["", "_", "."]) + self.fill(self.pick(["####", "##", "@@##", "19##"])).lower()
            return ("EMAIL", f"{user}@{self.pick(ZH_EMAIL_DOMAINS)}")
        f, l = ascii_fold(p["first"]) or "x", ascii_fold(p["last"]) or "y"
        user = self.pick([f"{f}.{l}", f"{f[0]}{l}", f"{f}{l}{self.r.randint(1, 99)}", f"{l}.{f}", f"{f}_{l}",
                          f"{f}{self.r.randint(50, 2005)}"])
        dom = self.pick(EMAIL_DOMAINS) if self.chance(.7) else ascii_fold(self.addr()["city"]).replace(".", "")[:12] + \
            self.pick(["health.org", "clinic.com", "med.org", "hospital.org"])
        return ("EMAIL", f"{user}@{dom}")

    def url(self):
        host = ascii_fold(self.addr()["city"]).replace(".", "")[:14] or "care"
        v = self.pick([f"https://www.{host}health.org/patients/{self.fill('######')}", f"http://portal.{host}clinic.com",
                       f"www.{host}medical.com", f"https://mychart.{host}health.org",
                       f"https://{host}.hospital.org/r?id={self.fill('^#####')}",
                       f"{host}-care.net/u/{self.fill('%%%%%%').lower()}", f"https://t.{host}.cn/{self.fill('%%%%%')}"])
        return ("URL", v)

    def ip(self):
        r = self.r
        if self.chance(.25):
            groups = [f"{r.randrange(65536):x}" for _ in range(8)]
            v = ":".join(groups) if self.chance(.5) else f"2001:db8:{groups[2]}::{groups[6]}:{groups[7]}"
        else:
            v = self.pick([f"192.168.{r.randrange(256)}.{r.randrange(1, 255)}",
                           f"10.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}",
                           f"{r.randint(11, 223)}.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}",
                           f"172.{r.randint(16, 31)}.{r.randrange(256)}.{r.randrange(1, 255)}"])
        return ("IP_ADDRESS", v)

    def ssn(self, spoken=False):
        a = self.r.choice([n for n in range(1, 900) if n != 666])
        v = f"{a:03d}-{self.r.randint(1, 99):02d}-{self.r.randint(1, 9999):04d}"
        if spoken:
            return ("SSN", spoken_digits(self.r, v))
        return ("SSN", pick_w(self.r, {v: 6, v.replace("-", " "): 1, v.replace("-", ""): 1.5}))

    def mrn(self, zh=None, kind="mrn"):
        zh = self.lang == "zh" if zh is None else zh
        if zh:
            return ("MRN", self.fill(self.pick(ZH_OPD_FMT if kind == "opd" else ZH_MRN_FMT)))
        return ("MRN", self.fill(self.pick(MRN_FMT)))

    def plan(self, zh=None):
        return ("HEALTH_PLAN", self.fill(self.pick(ZH_PLAN_FMT if (self.lang == "zh" if zh is None else zh) else PLAN_FMT)))

    def account(self, zh=None):
        return ("ACCOUNT", self.fill(self.pick(ZH_ACCT_FMT if (self.lang == "zh" if zh is None else zh) else ACCT_FMT)))

    def license(self, p=None, kind=None):
        kind = kind or self.pick(["npi", "dea", "state", "state", "zh"] if self.lang != "en" else ["npi", "dea", "state"])
        if kind == "npi":
            return ("LICENSE", npi(self.r))
        if kind == "dea":
            return ("LICENSE", dea(self.r, (p or self.pt)["last"] if not (p or self.pt)["zh"] else "W"))
        if kind == "zh":
            return ("LICENSE", self.fill("^##############"))
        return ("LICENSE", self.fill(self.pick(LIC_FMT)))

    def vehicle(self, zh=None):
        zh = self.lang == "zh" if zh is None else zh
        if zh:
            if self.zloc == "zh_TW":
                return ("VEHICLE", self.fill(self.pick(["@@@-####", "###-@@", "@@-####"])))
            return ("VEHICLE",
                    self.pick(ZH_PLATE_PROV) + self.fill(self.pick(["@#####", "@·%%%%%", "@%%%%%", "@D#####", "@F####%"])))
        if self.chance(.4):
            return ("VEHICLE", vin(self.r))
        return ("VEHICLE", self.fill(self.pick(["^@@@###", "@@@-####", "@@@ ####", "@@## @@@", "###-@@@", "@@-###-@@"])))

    def device(self):
        return ("DEVICE", self.fill(self.pick(DEVICE_FMT)) if self.chance(.85) else random_id(self.r))

    def idnum(self, zh=None, p=None):
        zh = self.lang == "zh" if zh is None else zh
        p = p or self.pt
        if zh and self.zloc == "zh_TW":
            return ("ID_NUMBER", tw_id(self.r, p["sex"] == "F"))
        if zh or (self.lang == "mixed" and self.chance(.5)):
            return ("ID_NUMBER", cn_resident_id(self.r, p["dob"], p["sex"] == "F"))
        return ("ID_NUMBER", self.fill(self.pick(PASSPORT_FMT)))

    def other_id(self, zh=None):
        zh = self.lang == "zh" if zh is None else zh
        if self.chance(.3):
            return ("ID", random_id(self.r))
        return ("ID", self.fill(self.pick(ZH_OTHER_ID_FMT if zh and self.chance(.7) else OTHER_ID_FMT)))

    def loose_id(self, zh=None):
        """An identifier with no label, in one of the places such numbers turn up."""
        v = pick_w(self.r, [(self.other_id(zh), 6), (self.plan(zh=False), .6), (self.device(), .6), (self.mrn(zh), 1),
                            (("ID_NUMBER", self.fill(self.pick(PASSPORT_FMT))), .4)])
        return self.pick([[v], ["(", v, ")"], ["[", v, "]"], ["#", v], ["ref ", v], ["*", v, "*"], [v, " "]])

    # -- filler text
    def _zh(self, zh):
        return (self.lang == "zh" or self.lang == "mixed" and self.chance(.5)) if zh is None else zh

    def prose(self, k=1, zh=None, kind=None):
        """k filler sentences (no PHI) as one plain piece."""
        zh = self._zh(zh)
        F = self.T["zh" if zh else "en"]
        kind = kind or ("句子" if zh else "sentence")
        out = [F.sentence(self.r, kind) for _ in range(k)]
        if not zh and self.chance(.05):  # scribbled Title Case line
            out = [" ".join(w[:1].upper() + w[1:] for w in x.split()) for x in out]
        return ("" if zh else " ").join(out)

    def heading(self, zh=None):
        """A section heading of ordinary words: 'Orthostatic Vitals', 'Stomach Upset Review', '跌倒风险'."""
        zh = self._zh(zh)
        F = self.T["zh" if zh else "en"]
        if self.chance(.6):
            return self.pick(F.lists["标题" if zh else "heading"])
        if zh:
            return "".join(F.words(self.r, ["常用", "检查", "症状", "部位"], 1)) + self.pick(["情况", "评估", "计划", "记录", "小结"])
        keys = ["everyday", "symptom", "lab", "anatomy", "abbrev", "drug", "service", "word"]
        w = F.words(self.r, keys, self.r.randint(1, 2))
        h = " ".join(x[:1].upper() + x[1:] for x in " ".join(w).split())
        return h + " " + self.pick(["Review", "Plan", "Update", "Check", "Assessment", "Notes", "Status", "Summary", "Log"])

    def misc(self, n, zh=None):
        """A free-text section: a heading of ordinary words, then filler sentences or bullets."""
        zh = self._zh(zh)
        h = self.heading(zh)
        if zh:
            n.add(self.pick([f"{h}：", f"【{h}】", f"{h}:\n", f"{h}："]))
        else:
            n.add(self.pick([f"{h}:\n", f"{h}: ", f"{h}\n", f"{h.upper()}:\n", f"## {h}\n", f"{h} - "]))
        if self.chance(.3):
            self.bullets(n, [self.prose(1, zh) for _ in range(self.r.randint(2, 4))])
        else:
            n.add(self.prose(self.r.randint(1, 4), zh))
        if self.chance(.12):
            n.add(" ", self.loose_id(zh))
        n.add("\n\n")

    # -- layout
    def hdr(self, title, zh=False):
        if zh:
            return self.pick([f"{title}：", f"【{title}】", f"{title}:", f"{title}："]) + self.pick(["", "\n"])
        return [f"{title}:\n", f"{title.upper()}:\n", f"## {title}\n", f"{title.upper()}\n", f"{title}: ",
                f"[{title}]\n"][self.hstyle]

    def fields(self, n, rows, zh=False):
        """Writes (label, pieces) rows as key: value lines, inline rows, a pipe table or aligned columns."""
        style = pick_w(self.r, {"kv": 4, "inline": 3, "pipe": 1.5, "aligned": 2})
        colon = self.pick(["：", "："]) if zh else self.pick([": ", ": ", ":  ", " - ", ":\t"])
        if style == "kv":
            for lab, val in rows:
                n.add(lab, colon, val, "\n")
        elif style == "inline":
            gap = self.pick(["　　", "  ", " "]) if zh else self.pick(["   ", "  ", " | ", "\t", "; "])
            for i, (lab, val) in enumerate(rows):
                n.add(lab, colon if not zh else "：", val,
                      "\n" if i % self.r.randint(2, 4) == 1 or i == len(rows) - 1 else gap)
        elif style == "pipe":
            n.add("| 项目 | 内容 |\n|---|---|\n" if zh else self.pick(["| Field | Value |\n|---|---|\n", ""]))
            for lab, val in rows:
                n.add("| ", lab, " | ", val, " |\n")
        else:
            w = max(len(l) for l, _ in rows) + self.r.randint(2, 6)
            dots = self.pick([" ", ".", " "])
            for lab, val in rows:
                n.add((lab + (":" if self.chance(.5) else "")).ljust(w, dots) + " ", val, "\n")
        n.add("\n")

    def bullets(self, n, items):
        b = self.pick(["- ", "* ", "• ", "", "{i}. ", "{i}) "])
        for i, it in enumerate(items, 1):
            n.add(b.format(i=i), it, "\n")


# ======================================================================================= English
def en_id_rows(c, extra=()):
    p, r = c.pt, c.r
    rows = [(c.pick(["Patient", "Name", "Patient Name", "PATIENT", "Pt Name"]), c.who(p, full=True)),
            (c.pick(["DOB", "D.O.B.", "Date of Birth", "Birth Date", "DOB"]), c.date(p["dob"], "full")),
            (c.pick(["MRN", "MR#", "Medical Record No.", "Hosp #", "Record Number", "MRN", "Unit No."]), c.mrn())]
    opt = [(c.pick(["Age", "AGE"]), c.age_num()),
           (c.pick(["Sex", "Gender"]), c.pick(["M", "Male"]) if p["sex"] == "M" else c.pick(["F", "Female"])),
           (c.pick(["Acct #", "Account No", "FIN", "Visit Acct"]), c.account()),
           (c.pick(["Member ID", "Insurance ID", "Policy #", "Subscriber ID", "Medicaid ID", "MBI"]), c.plan()),
           (c.pick(["Phone", "Tel", "Home Phone", "Cell"]), c.phone()),
           (c.pick(["Address", "Home Address", "Addr"]), c.address()),
           (c.pick(["SSN", "Soc Sec #", "Social Security No."]), c.ssn()),
           (c.pick(["Attending", "Attending Physician", "PCP", "Provider"]), c.who(c.person(), "clin")),
           (c.pick(["Admit Date", "Date of Service", "Visit Date", "DOS"]),
            [c.date(c.visit, "full"), c.pick(["", "", " 08:42", " @ 1415"])]),
           (c.pick(["Email", "E-mail"]), c.email()),
           (c.pick(["Passport No.", "Passport #"]), c.idnum(zh=False)),
           (c.pick(["Room", "Bed", "Unit"]), c.pick(["4B", "MICU 12", "512-A", "Ward 7, bed 3"]))]
    rest = r.sample(opt, r.randint(2, 6)) + list(extra)
    r.shuffle(rest)
    return rows[:1] + rest


def en_hpi(c, n):
    p, r = c.pt, c.r
    n.add(c.hdr(c.pick(["History of Present Illness", "HPI", "History", "Presenting Complaint"])))
    n.add(c.who(p, full=c.chance(.5)), " is a ", c.age(), " ", c.sex(), " with ", ", ".join(r.sample(EN_PMH, 3)),
          c.pick([" and ", ", and "]), c.pick(EPONYMS + EN_PMH), " who presents with ", c.pick(EN_CC), " for ",
          c.pick(["3 days", "2 weeks", "the past 48 hours", "about a month", "1 day", "6-8 weeks"]), ". ")
    if c.chance(.7):
        n.add(c.prose(c.r.randint(1, 3), zh=False), " ")
    if c.chance(.15):
        n.add(c.pick(["Symptoms date back to ", "Well until ", "First noticed in ", "Worse since "]),
              c.date(c.day(-200, -20), "monthname"), ". ")
    if c.chance(.6):
        n.add("Symptoms began on ", c.date(c.day(-14, -1), c.pick(["full", "short"])), " ",
              c.pick(["after a fall at home", "while gardening", "at work", "after a long flight", "at around 14:30"]), ". ")
    if c.chance(.5):
        n.add(c.pronoun(p, True), " was seen at ", c.facility(), " on ", c.date(c.day(-30, -2), c.pick(["full", "short"])),
              " and started on ", c.pick(EN_MEDS), ". ")
    if c.chance(.6):
        rel = c.person(sex=c.pick("MF"))
        tail = c.pick([[", who lives with ", "him" if p["sex"] == "M" else "her", ". "], [" (", c.phone(), "). "], [". "],
                       [". ", c.who(rel, "rel"), " called ", c.pick(["twice", "this morning", "the unit"]), ". "]])
        n.add("History obtained from the patient and ", c.poss(p), " ", c.pick(EN_REL[rel["sex"]]), ", ", c.who(rel, "rel"),
              tail)
    if c.chance(.3):
        n.add(c.pick(["Seen with ", "Accompanied by ", "Collateral from "]),
              ("NAME", c.nform(c.person(), c.pick(["FL", "F"]))), ". ")
    if c.chance(.1):
        n.add("MVC: restrained driver, vehicle ", c.vehicle(zh=False), " towed from the scene. ")
    if c.chance(.25):
        n.add(c.pick(["Lives independently, ", "Still drives, ", "Widowed, ", "Retired teacher, ", "Patient is "]),
              c.age_phrase(), c.pick([". ", ", mobile with a stick. ", "; lives with family. "]))
    if c.chance(.5):
        n.add("Diagnosed with ", c.pick(EPONYMS), " in ", c.year_alone(), "; ", c.pick(EN_TRAPS), ". ")
    if c.chance(.4):
        n.add("Of note, ", c.pronoun(p), " ", c.pick(["moved here from", "recently traveled to", "grew up in"]), " ",
              c.pick([c.city(), c.pick(STATES)]), c.pick([" in ", " in early "]), c.year_alone(), ". ")
    n.add("\n\n")


def en_pmh(c, n):
    n.add(c.hdr(c.pick(["Past Medical History", "PMH", "Medical History"])))
    items = [c.pick(EN_PMH) for _ in range(c.r.randint(2, 4))]
    items.append(f"{c.pick(EPONYMS)} (dx {c.year_alone()})")
    items.append(f"{c.pick(EN_PROC)} {c.year_alone()}")
    c.r.shuffle(items)
    c.bullets(n, items)
    n.add("\n")


def en_meds(c, n):
    n.add(c.hdr(c.pick(["Medications", "Discharge Medications", "Home Meds", "Current Medications"])))
    c.bullets(n, c.r.sample(EN_MEDS, c.r.randint(3, 6)))
    n.add("Allergies: ", c.pick(["NKDA", "penicillin (rash)", "sulfa", "no known drug allergies", "codeine - nausea"]),
          "\n\n")


def en_exam(c, n):
    r = c.r
    n.add(c.hdr(c.pick(["Physical Exam", "Exam", "Objective", "Vital Signs"])))
    n.add(f"BP {r.randint(95, 175)}/{r.randint(55, 100)}, HR {r.randint(52, 128)}, RR {r.randint(12, 28)}, "
          f"T {r.randint(360, 392) / 10} C, SpO2 {r.randint(86, 100)}% on {c.pick(['RA', '2L NC', '4L NC', 'room air'])}. ")
    n.add(c.pick(EN_TRAPS), ". ", c.pick(EN_TRAPS), ". ")
    if c.chance(.4):
        n.add("Weight ", str(r.randint(45, 130)), " kg. Exam at ",
              f"{r.randint(0, 23):02d}:{r.choice(['00', '15', '30', '45'])}", ". ")
    if c.chance(.6):
        n.add(c.prose(r.randint(1, 3), zh=False))
    n.add("\n\n")


def en_labs(c, n):
    r = c.r
    labs = [("Na", r.randint(128, 146), "mmol/L"), ("K", r.randint(30, 56) / 10, "mmol/L"),
            ("Cr", r.randint(6, 35) / 10, "mg/dL"),
            ("WBC", r.randint(30, 220) / 10, "K/uL"), ("Hgb", r.randint(70, 160) / 10, "g/dL"),
            ("Plt", r.randint(90, 450), "K/uL"),
            ("BNP", r.randint(20, 3000), "pg/mL"), ("Troponin", r.randint(1, 90) / 100, "ng/mL"),
            ("INR", r.randint(9, 35) / 10, ""),
            ("HbA1c", r.randint(50, 110) / 10, "%"), ("Lactate", r.randint(5, 45) / 10, "mmol/L"),
            ("Glucose", r.randint(60, 400), "mg/dL")]
    labs = r.sample(labs, r.randint(4, 8))
    d = c.date(c.day(-3, 0), c.pick(["full", "short"]))
    n.add(c.hdr(c.pick(["Labs", "Laboratory Results", "Pertinent Labs"])))
    style = c.pick(["pipe", "aligned", "inline"])
    if style == "pipe":
        n.add("| Test | Result | Units | Collected |\n|------|--------|-------|-----------|\n")
        for name, v, u in labs:
            n.add(f"| {name} | {v} | {u} | ", d if c.chance(.4) else f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}",
                  " |\n")
    elif style == "aligned":
        n.add("Collected ", d, c.pick(["", f" {r.randint(0, 23):02d}:{r.randint(0, 59):02d}"]), "   Accession ",
              c.other_id(zh=False), "\n")
        for name, v, u in labs:
            n.add(f"{name:<10}{str(v):>8}  {u}\n")
    else:
        n.add("(", d, ") ", ", ".join(f"{a} {v}" for a, v, _ in labs), "\n")
    n.add("\n")


def en_social(c, n):
    p = c.pt
    n.add(c.hdr(c.pick(["Social History", "Social", "SH"])))
    rel = c.person()
    bits = [[c.pronoun(p, True), " lives ", c.pick(["with ", "alone near "]), c.poss(p), " ", c.pick(EN_REL[rel["sex"]]),
             " ",
             c.who(rel, "rel"), " at ", c.address(), ". "],
            ["Former smoker, quit in ", c.year_alone(), "; ", c.pick(["occasional alcohol", "no alcohol", "2 drinks/week"]),
             ". "],
            ["Works as a ", c.pick(["teacher at ", "cook at ", "custodian at ", "volunteer at "]), c.facility(), ". "],
            ["Originally from ", c.pick(STATES), "; moved to ", c.city(), " in ", c.year_alone(), ". "],
            ["Drives a ", c.pick(["2015 Honda Civic", "pickup truck", "Toyota Corolla", "van"]), ", plate ", c.vehicle(),
             ". "],
            ["Contact ", c.who(rel, "rel"), " (", c.pick(EN_REL[rel["sex"]]), ") at ", c.phone(), " or ", c.email(rel),
             ". "]]
    for b in c.r.sample(bits, c.r.randint(2, 4)):
        n.add(b)
    n.add("\n\n")


def en_device(c, n):
    n.add(c.pick(["Devices: ", "Implants: ", "Device: "]), c.pick(DEVICE_MODELS), ", serial ",
          c.pick(["no. ", "# ", "", "number "]),
          c.device(),
          c.pick([[""], [f", implanted {c.year_alone()}"],
                  [", implanted ", c.date(c.day(-2000, -30), c.pick(["full", "month"]))]]))
    n.add(". ", c.pick(["Interrogated: normal function.", "Battery OK.", "", "Next check in 6 months."]), "\n\n")


def en_plan(c, n):
    n.add(c.hdr(c.pick(["Plan", "Assessment and Plan", "Disposition", "Follow-up"])))
    items = [["Follow up with ", c.who(c.person(), "clin"), " in ", c.pick(DEPTS), " on ",
              c.date(c.day(7, 40), c.pick(["full", "short"])),
              c.pick(["", " at 10:30", " at 2 pm"]), "."],
             ["Return to ED for ", c.pick(["chest pain", "fever > 38.5 C", "worsening shortness of breath"]), "."],
             ["Repeat BMP in 1 week; ", c.pick(EN_MEDS), "."],
             ["Call ", c.pick(DEPTS), " at ", c.phone(), " with questions", c.pick([".", "; fax records to ", ". Fax: "])],
             ["Referral sent to ", c.facility(kind="hosp"), ", ", c.address(), "."],
             ["Home health via ", c.facility(kind="care"), "; portal: ", c.url(), "."],
             ["Code status: ", c.pick(["Full code", "DNR/DNI", "DNR"]), ". Next visit ", c.date(c.day(60, 200), "month"),
              "."], [c.prose(1, zh=False)], [c.prose(1, zh=False)],
             ["Review again in ", c.date(c.day(30, 200), "monthname"), c.pick([".", " clinic.", ", sooner if needed."])]]
    chosen = c.r.sample(items, c.r.randint(2, 5))
    for it in chosen:
        if it[-1] in ("; fax records to ", ". Fax: "):
            it = it + [c.phone("FAX"), "."]
        if c.chance(.5):
            c.bullets(n, [it])
        else:
            n.add(it, " ")
    n.add("\n\n")


def en_signature(c, n, clin=None):
    clin = clin or c.person()
    r = c.r
    n.add(c.pick(["Electronically signed by ", "Signed: ", "Dictated by: ", "Attending: ", "", "Author: "]),
          c.who(clin, "clin"),
          c.pick([" on ", ", ", " | "]), c.date(c.day(0, 2), "full"),
          c.pick(["", f" {r.randint(0, 23):02d}:{r.randint(0, 59):02d}", " at 1632"]), "\n")
    extra = [["NPI: ", c.license(clin, "npi")], ["DEA #", c.license(clin, "dea")], ["Lic. ", c.license(clin, "state")],
             ["Pager ", c.phone()], ["Fax ", c.phone("FAX")], ["Employee ID ", c.other_id(zh=False)],
             ["Transcribed by ", c.who(c.person(), "nurse"), " ", c.date(c.day(0, 3), "full")], [c.email(clin)]]
    for e in r.sample(extra, r.randint(0, 3)):
        n.add(e, c.pick(["\n", "  ", " | "]))
    if c.chance(.15):
        n.add("\nAccessed from ", c.ip(), " by user ", c.other_id(zh=False), c.pick([[""], [" via ", c.url()]]), "\n")
    if c.chance(.15):
        n.add(c.pick(["\n— ", "\n-- ", "\n", "\n/", "\nby "]), ("NAME", c.nform(clin, c.pick(["ini", "ini", "INI"]))
                                                                   if c.chance(.7) else c.nform(clin, "ini").upper()), "\n")
    if c.chance(.15):
        ini = lambda q: ("NAME", c.nform(q, "INI").replace(".", ""))
        n.add("\n", ini(clin), "/",
              ini(c.person()) if c.chance(.5) else ("NAME", c.nform(c.person(), "INI").replace(".", "").lower()), "\n")
    if c.chance(.1):
        n.add("\n", c.other_id(zh=False), c.pick(["    Page 1 of 2", "", "  CONFIDENTIAL"]), "\n")


def en_vitals_line(c):
    r = c.r
    return f"BP {r.randint(95, 175)}/{r.randint(55, 100)} HR {r.randint(52, 128)} SpO2 {r.randint(88, 100)}%"


# --- English templates
def t_discharge(c, n):
    n.add(c.pick(["DISCHARGE SUMMARY", "Discharge Summary",
                  "Discharge Summary - " + c.pick(["Medicine", "Cardiology", "Geriatrics"])]), "\n\n")
    c.fields(n, en_id_rows(c, [("Admitted", c.date(c.day(-12, -2), "full")), ("Discharged", c.date(c.visit, "full"))]))
    n.add(c.hdr("Diagnosis"), c.pick(EN_DX), "; ", c.pick(EN_PMH), "\n\n")
    sections = [en_hpi, en_pmh, en_meds, en_labs, en_social, en_exam]
    for s in c.r.sample(sections, c.r.randint(2, 4)):
        s(c, n)
    n.add(c.hdr("Hospital Course"), c.who(c.pt), " was treated with ", c.pick(EN_MEDS), ". On ",
          c.date(c.day(-5, -1), c.pick(["short", "full"])),
          " ", c.pick(["cultures grew E. coli", "echo showed EF 40%", "PT/OT evaluated", "the Foley catheter was removed"]),
          ". ", c.prose(c.r.randint(1, 4), zh=False), " ")
    if c.chance(.5):
        w, q = c.relative()
        n.add(c.pick(["Discussed with", "Updated"]), " ", c.poss(c.pt), " ", w, " ", c.who(q, "rel"),
              " by phone (", c.phone(), ").")
    n.add("\n\n")
    if c.chance(.3):
        en_device(c, n)
    n.add("Discharged to ", c.pick([[c.facility(kind="care")], ["home"], [c.facility(kind="care"), ", ", c.address()]]),
          ".\n\n")
    en_plan(c, n)
    en_signature(c, n)


def t_admission(c, n):
    n.add(c.pick(["ADMISSION H&P", "History and Physical", "Admission Note", "H&P"]), " - ", c.date(c.visit, "full"), "\n")
    c.fields(n, en_id_rows(c))
    n.add(c.hdr("Chief Complaint"), c.pick(EN_CC), c.pick([" x 3 days", "", " since this morning"]), "\n\n")
    en_hpi(c, n)
    for s in c.r.sample([en_pmh, en_meds, en_social, en_exam, en_labs], c.r.randint(3, 5)):
        s(c, n)
    n.add(c.hdr("Family History"), c.pick(["Mother", "Father", "Brother"]), " with ", c.pick(EPONYMS), "; ",
          c.pick(["sister", "father"]), " died at ", c.pick(["", "age "]), c.age_num(c.r.randint(50, 99)), " of MI.\n\n")
    n.add(c.hdr("Assessment"), c.who(c.pt), " is a ", c.age(), " ", c.sex(), " admitted for ", c.pick(EN_DX), ".\n\n")
    en_plan(c, n)
    en_signature(c, n)


def t_progress(c, n):
    p = c.pt
    n.add(c.pick(["Progress Note", "PROGRESS NOTE", "Daily Progress Note", "SOAP Note"]), " ", c.date(c.visit, "full"),
          "  HD #",
          str(c.r.randint(2, 9)), "\n")
    if c.chance(.6):
        n.add("Pt: ", c.who(p, full=True), "  ", c.mrn(), "\n")
    n.add("\n", c.pick(["S: ", "Subjective: ", "S) "]), c.who(p), " reports ",
          c.pick(["less dyspnea", "ongoing pain 5/10", "poor sleep", "no complaints"]),
          ". ", c.pick([[""], ["Daughter ", c.who(c.person(sex="F"), "rel"), " at bedside. "]]),
          c.prose(c.r.randint(1, 3), zh=False))
    n.add("\n", c.pick(["O: ", "Objective: ", "O) "]), en_vitals_line(c), ". ", c.pick(EN_TRAPS), ". ",
          c.prose(c.r.randint(0, 2), zh=False), "\n")
    if c.chance(.5):
        en_labs(c, n)
    n.add(c.pick(["A/P: ", "Assessment/Plan: ", "A: "]), c.age(), " ", c.sex(), " with ", c.pick(EN_DX), ", HD#3.\n")
    c.bullets(n, [c.pick(EN_MEDS), c.pick(EN_MEDS), ["f/u ", c.pick(DEPTS), " ", c.date(c.day(3, 20), "short")],
                  ["d/w ", c.who(c.person(), "clin")]] + [c.prose(1, zh=False) for _ in range(c.r.randint(0, 3))])
    n.add("\n")
    en_signature(c, n)


def t_radiology(c, n):
    p = c.pt
    n.add(c.pick(["RADIOLOGY REPORT", "Imaging Report", "DIAGNOSTIC IMAGING"]), "\n", c.facility(kind="hosp"), "\n\n")
    c.fields(n, [("EXAM", c.pick(EN_IMAGING)), ("DATE", [c.date(c.visit, "full"), c.pick(["", " 14:32", " 0915"])]),
                 ("PATIENT", c.who(p, full=True)), (c.pick(["MRN", "MR #"]), c.mrn()), ("ACCESSION", c.other_id(zh=False)),
                 (c.pick(["REFERRING", "ORDERING PHYSICIAN"]), c.who(c.person(), "clin"))])
    n.add("CLINICAL HISTORY: ", *c.pick([[c.age(), " ", c.sex()], [c.sex().capitalize(), ", ", c.age_phrase()]]), ", ",
          c.pick(EN_CC), ". ",
          c.pick(["", "History of " + c.pick(EPONYMS) + "."]), "\n\n")
    n.add("COMPARISON: ",
          c.pick([["None."], ["CT dated ", c.date(c.day(-900, -30), "full"), "."],
                  ["Prior study from ", c.year_alone(), "."],
                  ["Outside films from ", c.facility(), ", ", c.date(c.day(-400, -30), "month"), "."]]), "\n\n")
    n.add("TECHNIQUE: ",
          c.pick(["Axial images with 100 mL Omnipaque 350.", "Standard protocol.", "Non-contrast axial images, 5 mm."]),
          "\n\n")
    n.add("FINDINGS:\n")
    c.bullets(n, c.r.sample(EN_FIND, 3) + [c.prose(1, zh=False) for _ in range(c.r.randint(1, 3))])
    n.add("\nIMPRESSION:\n")
    c.bullets(n, c.r.sample(EN_FIND, 2))
    if c.chance(.5):
        n.add("\nFindings called to ", c.who(c.person(), "clin"), " at ",
              f"{c.r.randint(0, 23):02d}:{c.r.randint(0, 59):02d}",
              " on ", c.date(c.visit, c.pick(["full", "short"])), " by ", c.who(c.person(), "clin"), ".\n")
    n.add("\n")
    en_signature(c, n)


def t_operative(c, n):
    surgeon, asst, anes = c.person(), c.person(), c.person()
    n.add(c.pick(["OPERATIVE REPORT", "Operative Note", "Brief Op Note"]), "\n\n")
    c.fields(n, [("Patient", c.who(c.pt, full=True)), ("MRN", c.mrn()), ("Date of Surgery", c.date(c.visit, "full")),
                 ("Surgeon", c.who(surgeon, "clin")), ("Assistant", c.who(asst, "clin")),
                 ("Anesthesia", [c.pick(["General", "Spinal", "MAC"]), " (", c.who(anes, "clin"), ")"])])
    proc = c.pick(EN_PROC)
    n.add("Preoperative diagnosis: ", c.pick(EN_DX), "\nProcedure: ", proc, "\nEBL: ", str(c.r.randint(5, 800)),
          " mL. Fluids 1.5 L LR.\n",
          "Specimens: ", c.pick([["none"], ["gallbladder to pathology, specimen ", c.other_id(zh=False)], ["appendix"]]),
          "\n")
    if c.chance(.5):
        n.add("Implants: ", c.pick(["Medtronic Azure XT DR", "Stryker Accolade II stem", "Zimmer plate, model L331"]),
              ", SN ", c.device(),
              "\n")
    n.add("\nDescription: The patient was identified as ", c.who(c.pt, full=True), " (DOB ", c.date(c.pt["dob"], "full"),
          ") and brought to OR ", str(c.r.randint(1, 12)), " at ", f"{c.r.randint(6, 18):02d}:{c.r.randint(0, 59):02d}",
          ". A time-out was performed. ", c.pick(EN_TRAPS), ". ", c.prose(c.r.randint(1, 3), zh=False), " The ", proc,
          " was completed without complication. ",
          c.pick(["Jackson-Pratt drain left in place.", "Foley catheter removed.", "Counts correct x2."]), "\n\n")
    n.add("Disposition: PACU, then ", c.pick(["floor", "ICU", "home"]), ". Family (", c.who(c.person(), "rel"),
          ") updated at ", c.phone(), ".\n\n")
    en_signature(c, n, surgeon)


def t_pathology(c, n):
    n.add(c.pick(["SURGICAL PATHOLOGY REPORT", "Pathology Report", "CYTOPATHOLOGY"]), "\n", c.facility(kind="hosp"),
          " Department of Pathology\n")
    c.fields(n, [("Accession #", c.other_id(zh=False)), ("Patient", c.who(c.pt, full=True)),
                 ("DOB", c.date(c.pt["dob"], "full")),
                 ("MRN", c.mrn()), ("Collected", c.date(c.visit, "full")), ("Received", c.date(c.day(0, 1), "full")),
                 ("Submitting MD", c.who(c.person(), "clin"))])
    n.add("SPECIMEN: ",
          c.pick(["A. Prostate, needle biopsies", "Gallbladder", "Colon, sigmoid, resection", "Skin, left forearm, shave"]),
          "\n\n")
    n.add("GROSS: Received in formalin labeled with the patient's name (", c.who(c.pt, full=True), ") and ",
          c.pick(["medical record number", "MRN"]), " (", c.mrn(), "), ",
          c.pick(["three cores 1.2-1.8 cm", "a 7.5 x 3.0 cm gallbladder", "a 2.1 cm ellipse"]), ". ",
          "Block ", c.other_id(zh=False), ". ", c.prose(c.r.randint(1, 3), zh=False), "\n\n")
    n.add("DIAGNOSIS: ",
          c.pick(["Prostatic adenocarcinoma, Gleason score 3+4=7", "Chronic cholecystitis with cholelithiasis",
                                 "Tubular adenoma, no high-grade dysplasia", "Hodgkin lymphoma, nodular sclerosis type",
                                 "Basal cell carcinoma, margins free"]), ".\n\n")
    en_signature(c, n)


def t_referral_letter(c, n):
    doc, me = c.person(), c.person()
    fac = c.facility()
    n.add(fac, "\n", c.address(multiline=c.chance(.5)), "\nTel ", c.phone(), c.pick(["   Fax ", "\nFax: ", " | F: "]),
          c.phone("FAX"), "\n\n")
    n.add(c.date(c.visit, "full"), "\n\n", c.who(doc, "clin"), "\n", c.facility(), "\n", c.address(multiline=c.chance(.5)),
          "\n\n")
    n.add(c.pick(["Dear Dr. ", "Dear Dr ", "Dear Doctor ", "Dear "]),
          ("NAME", c.nform(doc, c.pick(["L", "L", "FL"])) if not doc["zh"] else doc["last"]), ",\n\n")
    n.add(c.pick(["Re: ", "RE: ", "Re - "]), c.who(c.pt, full=True), ", DOB ", c.date(c.pt["dob"], "full"),
          c.pick([", NHS No. ", ", MRN ", ", Hosp no. "]), c.mrn(), "\n\n")
    n.add(c.pick(["Thank you for seeing ", "I would be grateful if you could see ", "I am writing to refer "]), c.who(c.pt),
          ", a ", c.age(), " ", c.sex(), " with ", c.pick(EN_DX), " and ", c.pick(EPONYMS), ". ")
    n.add(c.pronoun(c.pt, True), " was last seen on ", c.date(c.day(-60, -5), c.pick(["full", "short"])), " when ",
          c.pick(EN_TRAPS), ". ")
    if c.chance(.6):
        w, q = c.relative()
        n.add(c.poss(c.pt).capitalize(), " ", w, " ", c.who(q, "rel"), " can be reached on ", c.phone(), ". ")
    n.add(c.prose(c.r.randint(1, 3), zh=False), "\n\n")
    for s in c.r.sample([en_meds, en_pmh, en_labs], c.r.randint(1, 2)):
        s(c, n)
    n.add(c.pick(["Yours sincerely,", "Kind regards,", "Best wishes,", "Sincerely,"]), "\n\n", c.who(me, "clin"), "\n",
          c.pick(["Consultant Physician", "General Practitioner", "Family Medicine", ""]), "\n",
          c.pick([["GMC ", c.license(me, "state")], ["NPI ", c.license(me, "npi")], [c.email(me)], [""]]), "\n")
    if c.chance(.4):
        n.add("cc: ", c.who(c.person(), "clin"), "; ", c.who(c.pt, full=True), "\n")


def t_nursing(c, n):
    p, r = c.pt, c.r
    n.add(c.pick(["Nursing Note", "NURSING PROGRESS NOTE", "Shift Assessment"]), " - ", c.date(c.visit, "full"), " ",
          c.pick(["Day shift", "Night shift", "0700-1900"]), "\n")
    n.add("Patient: ", c.who(p, full=True), "   Room ", c.pick(["12", "4B", "512-A"]), "   ", c.mrn(), "\n\n")
    times = sorted(r.sample(range(0, 24 * 60, 15), r.randint(3, 6)))
    events = [["Assessed. ", en_vitals_line(c), ". ", c.pick(EN_TRAPS), "."], ["Meds given per MAR: ", c.pick(EN_MEDS), "."],
              (lambda w, q: [w.capitalize(), " ", c.who(q, "rel"), " called, updated; callback ", c.phone(),
                             "."])(*c.relative()),
              ["Dr. ", ("NAME", c.nform(c.person(), "L")), " notified of ", c.pick(["BP 88/50", "K 3.1", "temp 38.6"]),
               "; orders received."],
              ["Ambulated 50 ft with PT. ", c.pick(["Braden score 14.", "Morse Fall Scale 55.", "Bed alarm on."])],
              ["Pt states ", c.pick(['"I want to go home."', '"my son will pick me up."', '"call ']), "."],
              ["Handoff to ", c.who(c.person(), "nurse"), "."], [c.prose(1, zh=False)], [c.prose(2, zh=False)]]
    for t, e in zip(times, r.sample(events, len(times))):
        if e[1:2] == ['"call ']:
            e = e[:1] + ['"call my daughter ', c.who(c.person(sex="F"), "rel"), '."']
        n.add(f"{t // 60:02d}{c.pick([':', ''])}{t % 60:02d} ", e, "\n")
    n.add("\n", c.who(c.person(), "nurse"), "\n")


def t_lab_report(c, n):
    r = c.r
    n.add(c.facility(kind="hosp"), " ", c.pick(["Clinical Laboratory", "Laboratory Services", "Core Lab"]), "\n",
          c.address(), "  CLIA ", c.license(kind="state"), "\n\n")
    c.fields(n, [(c.pick(["Patient", "Name"]), c.who(c.pt, full=True)), ("DOB", c.date(c.pt["dob"], "full")),
                 ("Sex", c.sex()),
                 (c.pick(["MRN", "Patient ID"]), c.mrn()), ("Specimen ID", c.other_id(zh=False)),
                 ("Collected", [c.date(c.visit, "full"), f" {r.randint(0, 23):02d}:{r.randint(0, 59):02d}"]),
                 ("Ordering Provider", c.who(c.person(), "clin")), (c.pick(["Insurance", "Payer ID"]), c.plan())])
    en_labs(c, n)
    n.add(c.pick(["Comment: ", "Lab comment: ", "Note: ", ""]), c.prose(c.r.randint(1, 3), zh=False))
    n.add("\nReference ranges per ", c.pick(["CAP", "lab"]), " guidelines. H = high, L = low.\nVerified by ",
          c.who(c.person(), "nurse"),
          " ", c.date(c.day(0, 1), "full"), "\n")
    if c.chance(.3):
        n.add(c.other_id(zh=False), "\n")


DIALOGUE_LABELS = [("Doctor", "Patient"), ("DR", "PT"), ("D", "P"), ("Clinician", "Patient"), ("Speaker 1", "Speaker 2"),
                   ("Provider", "Pt"), ("NP", "Patient"), ("Physician", "Patient")]


BIZ_EN = ["{adj} Family Dental", "{adj} Physical Therapy", "{adj} Home Health", "{last} Eye Associates",
          "{city} Orthopedics", "{adj} Veterinary Clinic", "{adj} Pediatrics", "{last} Dental Group", "{adj} Pharmacy",
          "{last}'s Pharmacy", "{city} Family Practice", "{adj} Medical Practice", "{last} Hearing Center",
          "{adj} Sleep Center", "{city} Imaging", "{adj} Women's Health", "{last} Chiropractic", "{adj} Day Care",
          "{city} Fire Department", "{adj} Elementary", "{last} Construction", "{adj} Diner", "{city} Public Library"]
HOSP_SHORT = ["{city} General", "{last} Memorial", "{city} Medical", "St. {first}'s", "{city} Regional", "{last}",
              "{city}", "the {city} clinic", "{adj} Hospital", "{city} Children's"]
CHAINS_EN = ["Home Depot", "Walmart", "Target", "Costco", "Kroger", "Stop & Shop", "Walgreens", "CVS", "Tesco", "Lowe's",
             "Sainsbury's", "Safeway", "Amazon warehouse", "UPS depot", "Dunkin'", "Starbucks", "Boots", "Publix"]
JOBS_EN = ["a dental hygienist", "a bus driver", "a cashier", "a unit secretary", "a mechanic", "a teacher", "a nurse's aide",
           "a cook", "a security guard", "a receptionist", "a forklift operator", "a paralegal", "a custodian"]
TLDS = ["com", "org", "net", "co dot uk", "nhs dot uk", "org dot uk", "com dot au", "gov", "health"]


def street_name(a):
    """The street of an address without its number or unit: 'Fenno Street'."""
    s = re.sub(r"^[\d/-]+[A-Za-z]?,?\s+", "", a["street"]).split(",")[0]
    return re.sub(r"\s+(Apt\.?|Suite|Unit|#).*$", "", s).strip() or a["city"]


def spoken_group(rng, n):
    """A number read aloud the way people read parts of an address: 'one forty-two', 'one four two', 'sixty-nine'."""
    if n >= 100 and rng.random() < .5:
        hi, lo = divmod(n, 100)
        return ONES[hi] + " " + (words(lo) if lo >= 10 else ("oh " + ONES[lo]) if lo else "hundred")
    if n >= 10 and rng.random() < .3:
        return " ".join(ONES[int(d)] for d in str(n))
    return words(n)


def spoken_ip(rng, v):
    dot = rng.choice([" dot ", ", dot, ", " point ", " dot "])
    return dot.join(spoken_group(rng, int(g)) for g in v.split("."))


def spoken_plate(rng, v):
    sep = rng.choice([", ", " ", ", "])
    return sep.join(ONES[int(ch)] if ch.isdigit() else ch for ch in v if ch.isalnum())


def dialogue_places(c, D, P, Nm, low):
    """Exchanges about where people live, work and were seen, as said aloud: towns, businesses and
    hospitals by their short names, street corners, neighbourhoods, first names alone, spoken web
    and IP addresses, number plates."""
    r = c.r
    L = lambda v: ("LOCATION", v.lower() if low else v)
    nl = c.P[pick_w(r, c.name_locs)]
    a, b = c.addr(), c.addr()
    fmt = lambda pat: pat.format(city=a["city"], adj=c.pick(ADJ), last=c.pick(nl["last"]),
                                 first=c.pick(nl["first_m"] + nl["first_f"]))
    hosp = fmt(c.pick(HOSP_SHORT))
    hosp = ["the ", L(a["city"]), " clinic"] if hosp.startswith("the ") else [L(hosp)]
    staff, kid = c.person(zh=False), c.person(zh=False)
    F = lambda q: Nm("F", q)
    host = ascii_fold(c.pick([a["city"], fmt("{adj}"), fmt("{last}")])).lower()
    host += c.pick([" medical", " health", " clinic", " family practice", "", " surgery"])
    url = host + " dot " + c.pick(TLDS) + c.pick(["", " slash book", " slash appointments", " slash portal",
                                                   " slash " + c.pick(["patients", "forms", "covid"])])
    if c.chance(.3):
        url = c.pick(["www dot ", "w w w dot ", "my chart dot "]) + url
    ipv4 = ".".join(str(x) for x in (c.pick([10, 192, 172, r.randint(11, 223)]), r.randrange(256), r.randrange(256),
                                       r.randint(1, 254)))
    plate = c.vehicle(zh=False)[1] if c.chance(.2) else c.fill(c.pick(["&@@@###", "@@@####", "###@@@", "@@##@@@"]))
    return [
        [(D, ["Where are you living these days?"]),
         (P, [c.pick(["Over in ", "Out in ", "Still in ", "We're in ", "I'm in "]), L(a["city"]),
              c.pick([".", ", near the " + c.pick(["school", "church", "train station", "high school"]) + ".",
                      [", off ", L(street_name(b)), "."]])])],
        [(D, ["What do you do for work?"]),
         (P, ["I'm ", c.pick(JOBS_EN), " at ", L(fmt(c.pick(BIZ_EN))),
              c.pick([".", [" in ", L(a["city"]), "."], [" over on ", L(street_name(b)), "."]])])],
        [(D, ["Are you still working?"]),
         (P, [c.pick(["Yeah, ", "Part time, ", "Three days a week, "]), "at the ", L(c.pick(CHAINS_EN)),
              c.pick([" in ", " out in ", " over in ", " on "]),
              L(a["city"] if c.chance(.6) else street_name(b)), "."])],
        [(D, ["Have you been seen anywhere else for this?"]),
         (P, [c.pick(["I went to ", "They did a scan at ", "I had it done at ", "Yeah, at ", "Over at "]), *hosp,
              c.pick([".", [", by doctor ", Nm("L", c.person(zh=False)), "."], " last year.", " in the ER."])])],
        [(D, ["Where did it happen?"]),
         (P, [c.pick(["I was at the light at ", "Right at the corner of ", "On ", "Crossing at "]),
              L(f"{street_name(a)} and {street_name(b)}" if c.chance(.5)
                else f"{street_name(a).split()[0]} and {street_name(b).split()[0]}"), c.pick([".", ", by the gas station."])])],
        [(D, ["Which neighborhood is that?"]),
         (P, [c.pick(["It's ", "", "Down by ", "Near "]),
              L(fmt(c.pick(["{last} Square", "{adj} Heights", "{last} Park", "{adj}", "{city} Village", "{last} Hill"]))),
              "."])],
        [(D, ["Who else is helping at home?"]),
         (P, [c.pick(["My neighbor ", "Our friend ", "My cousin ", "My aide, "]), F(c.person(zh=False)),
              c.pick([", she comes by.", ", he drives me.", ", every morning."])])],
        [(P, [c.pick(["Hi, I'm ", "Sorry to interrupt, I'm ", "Hello, this is "]), F(staff),
              c.pick([" from registration.", " from the front desk.", ", the nurse today.", " from billing."])]),
         (D, ["Thanks, ", F(staff), "."])],
        [(D, ["And has ", F(kid), c.pick([" had his shots?", " had her shots?", " been sleeping?"])]),
         (P, ["Yes, and ", F(kid), c.pick(["'s doing better.", " is fine.", "'s insurance is through my work."])])],
        [(D, ["I'll refer you to doctor ", Nm("l" if low else "L", c.person(zh=False)), " in our group. Follow up with ",
              "your primary, doctor ", Nm("L", c.person(zh=False)), ", in a week."]), (P, ["Okay."])],
        [(D, ["You can also book online at ", ("URL", url.lower()), "."]), (P, ["Okay, I'll write that down."])],
        [(D, ["The system says the connection from ", ("IP_ADDRESS", spoken_ip(r, ipv4)), " is unstable."]),
         (P, ["Can you hear me now?"])],
        [(D, ["Did you get the plate of the other car?"]),
         (P, [c.pick(["The cop got it, it was ", "Yeah, ", "I think it was "]), ("VEHICLE", spoken_plate(r, plate)), "."])],
    ]


def t_dialogue_en(c, n):
    p, r = c.pt, c.r
    doc, rel = c.person(), c.person()
    D, P = c.pick(DIALOGUE_LABELS)
    asr = c.chance(.45)
    if asr and c.chance(.7):
        n.case = "lower"
    stamp = c.chance(.3)
    clock = [r.randint(0, 5), r.randint(0, 59)]
    if c.chance(.6):
        n.add(c.pick(["Transcript of ", "Ambient scribe transcript - ", "Telehealth visit, "]),
              c.pick(["outpatient visit", "follow-up", "new patient"]),
              ", ", c.date(c.visit, "full"), "\n\n")

    def turn(who, *pieces):
        if stamp:
            clock[1] += r.randint(3, 40)
            n.add(f"[00:{clock[0] + clock[1] // 60:02d}:{clock[1] % 60:02d}] ")
        n.add(who, ": ")
        n.punct = not asr
        filler = c.pick(FILLERS) if asr or c.chance(.3) else ""
        if filler and not asr and isinstance(pieces[0], str):
            filler, pieces = filler.capitalize(), (pieces[0][:1].lower() + pieces[0][1:],) + pieces[1:]
        n.add(filler, *pieces)
        n.punct = True
        n.add("\n")

    sp = asr or c.chance(.3)  # spoken numbers and dates
    low = c.chance(.25)  # names typed in lower case by a scribe even where the rest is not
    Nm = lambda form, q=p: ("NAME", (c.nform(q, form).lower() if low else c.nform(q, form)) if not q["zh"] else c.zfull(q))
    if c.chance(.25):  # speakers labelled by name: "MELE:", "Dr Havili:"
        D = c.pick([["Dr ", Nm("L", doc)], ["DR. ", ("NAME", doc["last"].upper())], [Nm("F", doc)]])
        P = c.pick([[("NAME", c.nform(p, "FU"))], [Nm("F")], [Nm("FL")], [("NAME", c.nform(p, "f"))]])
    relw = c.pick(EN_REL[rel["sex"]])
    R = c.pick([[relw.upper()], [("NAME", c.nform(rel, c.pick(["FU", "F", "f"])))], ["Family"]])
    turn(D, *c.pick([["Good morning, I'm Dr. ", Nm("L", doc)], ["Hi, I'm Dr. ", Nm("L", doc)],
                     ["Hello, this is Dr. ", Nm("FL", doc)],
                     ["Hi there, my name is ", Nm("FL", doc)], ["Hi, I'm ", Nm("F", doc), ", one of the doctors"]]),
         c.pick([". Can you tell me your full name?", ". And you are?", ". Can you confirm your name and date of birth?"]))
    turn(P, c.pick(["Yes, it's ", "Sure, ", "", "It's "]), Nm("FL"),
         c.pick([["."], [", but everyone calls me ", Nm("F"), "."]]))
    exchanges = [
        [(D, ["And your date of birth?"]), (P, [c.date(p["dob"], "spoken" if sp else "full"), "."])],
        [(D, ["How old are you now?"]), (P, [*c.age(spoken=True), c.pick(["", ", can you believe it"])])],
        [(D, ["What's the best number to reach you?"]),
         (P, [c.pick(["It's ", "", "My cell is "]), c.phone(spoken=sp), "."])],
        [(D, ["And your address, still the same?"]),
         (P, ["No, we moved to ", ("LOCATION", c.addr()["street"]), " in ", c.city(),
              c.pick([" last month.", " in " + c.year_alone() + "."])])],
        [(D, ["Who came with you today?"]),
         (P, ["My ", relw, ", ", Nm(c.pick(["F", "FL"]), rel), ". ", c.pronoun(rel, True), " drives me."])],
        [(D, ["So what brings you in?"]),
         (P, [c.pick(EN_CC), " for about ", c.pick(["three days", "two weeks", "a month"]), ". It started around ",
              c.date(c.day(-20, -3), "spoken" if sp else "short"), "."])],
        [(D, ["Are you still taking the ", c.pick(["metoprolol", "metformin", "apixaban", "lisinopril"]), "?"]),
         (P, ["Yes, ", c.pick(["twenty five milligrams", "5 mg", "one tablet twice a day", "500 mg"]), ", since ",
              c.year_alone(), "."])],
        [(D, ["For the insurance, can I get your social?"]), (P, [c.ssn(spoken=sp), "."])],
        [(D, ["And your member ID on the card?"]), (P, ["It says ", c.plan(zh=False), "."])],
        [(D, ["Your blood pressure is ",
              f"{r.randint(110, 170)} over {r.randint(60, 95)}" if sp else f"{r.randint(110, 170)}/{r.randint(60, 95)}",
              " today."]), (P, ["Is that bad?"])],
        [(D, ["I'll send the results to your email."]),
         (P, ["Sure, it's ", c.email() if not sp else ("EMAIL", c.email()[1].replace("@", " at ").replace(".", " dot ")),
              "."])],
        [(D, ["Did you see anyone else for this?"]),
         (P, ["I went to ", c.facility(), " and saw Dr. ", Nm("L", c.person()), " there."])],
        [(D, ["Let's see you back on ", c.date(c.day(7, 40), "spoken" if sp else "short"), ". Call ", c.phone(spoken=sp),
              " if anything changes."]), (P, ["Okay, thank you, doctor."])],
        [(D, ["Any family history?"]),
         (P, ["My ", c.pick(["mother", "father"]), " had ", c.pick(EPONYMS), ", died at ",
              *c.age(r.randint(60, 99), spoken=True, lead=False), "."])],
        [(D, ["Sorry, how do you spell that?"]), (P, [c.pick(["It's ", "", "That's "]), ("NAME", c.nform(p, "SPELL"))])],
        [(D, ["Do you have the serial number for the ", c.pick(DEVICE_MODELS + ["pump", "monitor", "sensor"]), "?"]),
         (P, [c.pick(["Yeah, it's ", "Um, ", "It says "]), (lambda v: ("DEVICE", spell_out(r, v) if sp else v))(
             c.device()[1]), "."])],
        [(D, ["And your hospital number?"]),
         (P, [c.pick(["", "It's "]), (lambda v: ("MRN", spell_out(r, v) if sp else v))(c.mrn(zh=False)[1])])],
        [(D, ["When did this all start?"]),
         (P, [c.pick(["Back in ", "Around ", "Since ", "Sometime in "]), c.date(c.day(-200, -20), "monthname"),
              c.pick([", I think.", ".", " or so."])])],
        [(D, ["And you are?"]), (R, ["I'm ", c.poss(p), " ", relw, ", ", Nm("F", rel), "."])],
        [(R, [c.prose(1, zh=False, kind="chat_patient")]), (D, [c.prose(1, zh=False, kind="chat_doctor")])],
    ]
    chat = [[(D, [c.prose(1, zh=False, kind="chat_doctor")]), (P, [c.prose(1, zh=False, kind="chat_patient")])]
            for _ in range(r.randint(2, 5))]
    places = dialogue_places(c, D, P, Nm, low or n.case == "lower")
    chosen = r.sample(exchanges, r.randint(4, 8)) + r.sample(places, r.randint(2, 5)) + chat
    r.shuffle(chosen)
    for ex in chosen:
        for who, pieces in ex:
            turn(who, *pieces)


# ======================================================================================= Chinese
def zh_id_rows(c, extra=()):
    p, r = c.pt, c.r
    rows = [("姓名", c.zwho(p, full=True) if p["zh"] else c.who(p, full=True)), ("性别", c.sex(zh=True)), ("年龄", c.age(zh=True))]
    opt = [(c.pick(["住院号", "病案号", "ID号"]), c.mrn(zh=True)), ("门诊号", c.mrn(zh=True, kind="opd")),
           ("床号", f"{r.randint(1, 60)}床"), ("科室", c.pick(ZH_DEPTS)),
           (c.pick(["出生日期", "出生年月"]), c.date(p["dob"], "full", zh=True)),
           (c.pick(["身份证号", "身份证号码", "证件号码"]) if c.zloc == "zh_CN" else "身分證字號", c.idnum(zh=True)),
           (c.pick(["联系电话", "电话", "手机"]), c.phone(zh=True)), (c.pick(["现住址", "住址", "家庭住址"]), c.zaddress()),
           (c.pick(["医保卡号", "医保号", "社保卡号"]), c.plan(zh=True)), ("职业", c.pick(["退休", "教师", "农民", "工人", "职员"])),
           ("工作单位", c.facility(zh=True)),
           ("入院日期", [c.date(c.day(-10, -1), "full", zh=True), c.pick(["", " 14:30", " 09:12"])]),
           ("联系人", (lambda w, q: [c.zwho(q, "rel"), "（", w, "）"])(*c.relative(zh=True))), ("婚姻", c.pick(["已婚", "未婚", "丧偶"])),
           ("籍贯", [c.province(), c.zcity()]), ("费用账号", c.account(zh=True))]
    rest = r.sample(opt, r.randint(3, 7)) + list(extra)
    r.shuffle(rest)
    return rows + rest


def zh_hpi(c, n, lead="现病史"):
    p = c.pt
    n.add(c.hdr(lead, zh=True))
    n.add(c.zwho(p), "，", c.sex(zh=True), "，", c.age(zh=True), "，因“", c.pick(ZH_CC),
          c.pick(["3天", "1周", "2月余", "半年", "10小时"]), "”于",
          c.date(c.visit, "full", zh=True), c.pick(["", " 10:20"]),
          c.pick(["入院。", "来我院就诊。", "收入" + c.pick(ZH_DEPTS) + "。", "门诊就诊。"]))
    if c.chance(.8):
        n.add(c.prose(c.r.randint(1, 3), zh=True))
    if c.chance(.15):
        n.add(c.pick(["患者自", "家属诉其自", "约于"]), c.date(c.day(-200, -20), "monthname", zh=True),
              c.pick(["份起", "起", "开始"]), c.pick(ZH_CC), "。")
    if c.chance(.6):
        n.add("患者于", c.date(c.day(-60, -3), c.pick(["short", "full"]), zh=True), "在",
              c.pick([[c.facility(zh=True)], [c.pick(ZH_NEG_FAC)]]),
              "就诊，诊断为“", c.pick(ZH_DX), "”，予", c.pick(ZH_MEDS), "治疗。")
    if c.chance(.5):
        n.add("自", c.year_alone(), "年起", c.pick(["规律服用", "间断服用"]), c.pick(ZH_MEDS), "。")
    if c.chance(.5):
        n.add(c.pick(ZH_TRAPS), "，", c.pick(ZH_TRAPS), "。")
    if c.chance(.4):
        w, q = c.relative(zh=True)
        n.add("病史由其", w, c.zwho(q, "rel"), "代诉", c.pick([["。"], ["，联系电话", c.phone(zh=True), "。"]]))
    if c.chance(.1):
        n.add("患者驾驶", c.vehicle(zh=True), "号车辆时发生车祸。")
    n.add("\n\n")


def zh_history(c, n):
    n.add(c.hdr("既往史", zh=True),
          c.pick([["有", c.pick(ZH_DX), "病史", c.pick(["10余年", "5年", "3月"])], ["否认", c.pick(ZH_DX), "病史"]]), "。",
          c.pick(["", c.year_alone() + "年行阑尾切除术。", "否认肝炎、结核病史。"]), "\n")
    n.add(c.hdr("个人史", zh=True), "生于", c.province(),
          c.zcity(), c.pick([["，久居本地。"], ["，现住址：", c.zaddress(), "。"]]))
    if c.chance(.4):
        n.add("曾于", c.facility(zh=True), "工作。")
    n.add("\n", c.hdr("家族史", zh=True), c.pick(["父亲", "母亲"]), "患", c.pick(ZH_DX), "，", c.pick(["已故", "健在"]), "。\n\n")


def zh_exam(c, n):
    r = c.r
    n.add(c.hdr(c.pick(["体格检查", "查体", "专科检查"]), zh=True),
          f"T {r.randint(360, 392) / 10}℃，P {r.randint(55, 120)}次/分，R {r.randint(12, 26)}次/分，"
          f"BP {r.randint(95, 175)}/{r.randint(55, 100)}mmHg。",
          c.pick(ZH_TRAPS), "，", c.pick(ZH_TRAPS), "。", c.prose(r.randint(0, 2), zh=True), "\n\n")


def zh_labs(c, n):
    r = c.r
    items = r.sample(ZH_TRAPS[3:10] + ["ALT 45U/L", "K 3.4mmol/L", "PLT 186×10^9/L", "D-二聚体 1.2mg/L"], r.randint(3, 6))
    n.add(c.hdr(c.pick(["辅助检查", "实验室检查", "检验结果"]), zh=True))
    if c.chance(.4):
        n.add("| 项目 | 结果 | 日期 |\n|---|---|---|\n")
        for it in items:
            n.add("| ", it, " | ", c.pick(["↑", "↓", "-"]), " | ", c.date(c.day(-3, 0), c.pick(["full", "short"]), zh=True),
                  " |\n")
    else:
        n.add(c.date(c.day(-3, 0), c.pick(["full", "short"]), zh=True), "：", "；".join(items), "。标本号", c.other_id(zh=True),
              "。\n")
    n.add("\n")


def zh_plan(c, n):
    n.add(c.hdr(c.pick(["诊疗计划", "处理", "出院医嘱", "医嘱"]), zh=True))
    items = [[c.pick(ZH_MEDS)], ["于", c.date(c.day(7, 40), c.pick(["full", "short"]), zh=True), "复诊",
                                 c.pick(["", "，门诊号", "（", "。"])],
             ["如有不适请拨打", c.phone(zh=True), "。"], ["转", c.facility(zh=True), c.pick(ZH_DEPTS), "进一步治疗"],
             ["低盐低脂饮食，", c.pick(["2周后", "1月后", "3天后"]), "复查血常规"], ["随访电话：", c.phone(zh=True)],
             [c.prose(1, zh=True)], [c.prose(1, zh=True)]]
    chosen = c.r.sample(items, c.r.randint(2, 4))
    for i, it in enumerate(chosen, 1):
        if it[-1] == "，门诊号":
            it = it + [c.mrn(zh=True, kind="opd")]
        elif it[-1] == "（":
            it = it + [c.zwho(c.person(zh=True), "clin"), "门诊）"]
        n.add(f"{i}. " if c.chance(.6) else "", it, "\n")
    n.add("\n")


def zh_sign(c, n):
    doc = c.person(zh=True)
    n.add(c.pick(["医师签名：", "主治医师：", "记录者：", "经治医师：", "签名："]), c.zwho(doc, "clin"), c.pick(["　　", "  ", "\n"]),
          c.pick(["日期：", "记录时间：", ""]), c.date(c.day(0, 1), "full", zh=True), c.pick(["", " 16:45", " 08:30"]), "\n")
    if c.chance(.3):
        n.add(c.pick(["执业证书编码：", "医师资格证号："]), c.license(kind="zh"), "\n")
    if c.chance(.2):
        n.add("上级医师：", c.zwho(c.person(zh=True), "clin"), "\n")
    if c.chance(.15):
        n.add(c.pick(["科室电话：", "值班电话："]), c.phone(zh=True), c.pick(["　传真：", "  Fax: "]), c.phone("FAX", zh=True), "\n")
    if c.chance(.08):
        n.add("打印终端：", c.ip(), c.pick([[""], ["　随访平台：", c.url()]]), "\n")


def t_zh_outpatient(c, n):
    n.add(c.pick(["门诊病历", "门诊记录", "门 诊 病 历", "专科门诊记录"]), "\n", c.facility(zh=True) if c.chance(.5) else "", "\n\n")
    c.fields(n, zh_id_rows(c, [("就诊日期", c.date(c.visit, "full", zh=True))]), zh=True)
    n.add(c.hdr("主诉", zh=True), c.pick(ZH_CC), c.pick(["3天", "1周", "2月", "反复5年，加重1周"]), "。\n")
    zh_hpi(c, n)
    for s in c.r.sample([zh_history, zh_exam, zh_labs], c.r.randint(1, 3)):
        s(c, n)
    n.add(c.hdr("诊断", zh=True), c.pick(ZH_DX), "；", c.pick(ZH_DX), "\n\n")
    zh_plan(c, n)
    zh_sign(c, n)


def t_zh_discharge(c, n):
    n.add(c.pick(["出院记录", "出院小结", "出 院 记 录"]), "\n\n")
    c.fields(n, zh_id_rows(c, [("出院日期", c.date(c.day(3, 15), "full", zh=True))]), zh=True)
    zh_hpi(c, n, lead=c.pick(["入院情况", "病史摘要"]))
    n.add(c.hdr("诊疗经过", zh=True), "入院后予", c.pick(ZH_MEDS), "、", c.pick(ZH_MEDS), "等治疗。",
          c.date(c.day(1, 5), c.pick(["short", "full"]), zh=True),
          "复查", c.pick(ZH_TRAPS), "。", c.prose(c.r.randint(1, 3), zh=True), c.pick(["", "请" + c.pick(ZH_DEPTS) + "会诊，"]))
    if c.chance(.5):
        n.add(c.pick(ZH_DEPTS), c.zwho(c.person(zh=True), "clin"), "会诊后建议", c.pick(["继续当前治疗", "加用利尿剂", "手术治疗"]), "。")
    if c.chance(.3):
        n.add("患者起搏器序列号", c.device(), "，程控正常。")
    n.add("\n\n", c.hdr("出院诊断", zh=True), c.pick(ZH_DX), "\n\n")
    zh_plan(c, n)
    zh_sign(c, n)


def t_zh_lab(c, n):
    r = c.r
    n.add(c.facility(zh=True, kind="hosp"), c.pick(["检验报告单", "检验科报告", "医学检验报告"]), "\n\n")
    c.fields(n, [("姓名", c.zwho(c.pt, full=True)), ("性别", c.sex(zh=True)), ("年龄", c.age(zh=True)),
                 (c.pick(["标本号", "条码号"]), c.other_id(zh=True)),
                 (c.pick(["住院号", "门诊号"]), c.mrn(zh=True)), ("科别", c.pick(ZH_DEPTS)), ("床号", f"{r.randint(1, 60)}床"),
                 ("采样时间", [c.date(c.visit, "full", zh=True), f" {r.randint(6, 22):02d}:{r.randint(0, 59):02d}"]),
                 ("送检医生", c.zwho(c.person(zh=True), "clin"))], zh=True)
    n.add("项目名称            结果      单位        参考范围\n")
    for name, unit, lo, hi in r.sample([("白细胞计数", "10^9/L", 35, 95), ("血红蛋白", "g/L", 110, 160), ("血小板", "10^9/L", 100, 300),
                                        ("血钾", "mmol/L", 35, 55), ("肌酐", "μmol/L", 44, 133), ("血糖", "mmol/L", 39, 61)], 4):
        k = 10 if lo < 100 else 1
        n.add(f"{name:<14}{r.randint(lo - 10, hi + 20) / k:<10}{unit:<12}{lo / k:g}-{hi / k:g}\n")
    n.add(c.pick(["\n备注：", "\n结果解释：", "\n"]), c.prose(c.r.randint(1, 2), zh=True), "\n")
    n.add("\n检验者：", c.zwho(c.person(zh=True), "nurse"), "　审核者：", c.zwho(c.person(zh=True), "clin"), "　报告日期：",
          c.date(c.day(0, 1), "full", zh=True), "\n")


def t_zh_dialogue(c, n):
    p, r = c.pt, c.r
    D, P = c.pick([("医生", "患者"), ("医", "患"), ("大夫", "病人"), ("医生", "家属")])
    n.add(c.pick(["门诊问诊录音转写", "问诊记录", ""]), c.pick([[""], ["（", c.date(c.visit, "full", zh=True), "）"]]), "\n")
    turn = lambda who, *x: n.add(who, c.pick(["：", ":"]), *x, "\n")
    full = ("NAME", c.zfull(p))
    doc = c.person(zh=True)
    if c.chance(.25):  # speakers labelled by name: "向医生：", "阿梅："
        D = [("NAME", doc["last"]), c.pick(["医生", "主任", "大夫"])]
        P = c.pick([[full], c.zwho(p)])
    turn(D, c.pick(["您好，我是", "你好，我是"]), c.zwho(doc, "clin"), "，请问您叫什么名字？")
    turn(P, c.pick(["我叫", "", "我是"]), full, "。")
    ex = [[(D, ["出生日期是？"]), (P, [c.date(p["dob"], "full", zh=True), "。"])],
          [(D, ["今年多大了？"]), (P, c.pick([c.age(zh=True), ["今年", c.age_num(zh=True)]]) + ["了。"])],
          [(D, ["留个电话吧。"]), (P, [c.phone(zh=True, spoken=c.chance(.4)), "。"])],
          [(D, ["住在哪里？"]), (P, ["住在", c.zaddress(), "。"])],
          [(D, ["哪里不舒服？"]), (P,
                             [c.pick(ZH_CC), c.pick(["三天了", "一个礼拜了", "好几个月了"]), "，",
                              c.date(c.day(-10, -2), "short", zh=True), "开始的。"])],
          [(D, ["以前在哪里看过？"]), (P,
                               ["在", c.facility(zh=True), "看过，", ("NAME", c.person(zh=True)["last"]), "医生说是", c.pick(ZH_DX),
                                "。"])],
          [(D, ["身份证号报一下。"]), (P, [c.idnum(zh=True), "。"])],
          [(D, ["谁陪您来的？"]), (P, ["我", *(lambda w, q: [w, c.zwho(q, "rel")])(*c.relative(zh=True)), "。"])],
          [(D, ["血压", f"{r.randint(110, 170)}/{r.randint(60, 95)}", "，有点高。", c.date(c.day(7, 30), "short", zh=True),
                "来复查。"]), (P, ["好的，谢谢医生。"])],
          [(D, ["平时吃什么药？"]), (P, [c.pick(ZH_MEDS), "，从", c.year_alone(), "年开始吃的。"])],
          [(D, ["什么时候开始的？"]), (P, [c.pick(["", "大概", "去年"]), c.date(c.day(-200, -20), "monthname", zh=True),
                                   c.pick(["份吧。", "开始的。", "左右。"])])],
          [(D, ["起搏器的序列号念一下。"]), (P, [c.device(), "。"])],
          [(D, ["哪位医生给你做的手术？"]), (P, [c.zwho(c.person(zh=True), "clin"), "。"])],
          [(D, ["平时谁照顾你？"]), (P, [c.pick(["我女儿", "我老伴", "护工", "邻居"]), c.zwho(c.person(zh=True), "rel"), "。"])]]
    Pz = c.P[c.zloc]
    L = lambda v: ("LOCATION", v)
    spot = lambda: L(c.pick([f"{c.pick(Pz['zdistrict'])}公园", c.pick(Pz["zstreet"]), f"{c.pick(Pz['zstreet'])}步行街",
                             f"{c.pick(Pz['zcity'])}广场", f"{c.pick(Pz['zcity'])}西站"]))
    kw, kin = c.relative(zh=True)
    ex += [[(D, ["平时去哪儿锻炼？"]), (P, [c.pick(["每天晚饭后在", "早上去", "一般在"]), spot(),
                                      c.pick(["走一圈。", "那边转转。", "打太极。"])])],
           [(D, ["老家是哪里的？"]), (P, [L(c.pick(Pz["zcity"])), "，", L(c.pick(Pz["zdistrict"])),
                                     c.pick(["那边的。", "的。"]), c.pick(["", ["后来住", L(c.pick(Pz["zdistrict"])), "。"]])])],
           [(D, ["平时自己买菜吗？"]), (P, ["去", L(c.pick(ZH_CHAINS)), c.pick(["买菜", "买东西"]),
                                      c.pick(["。", ["，在", spot(), "那儿。"]])])],
           [(D, ["那天去哪儿了？"]), (P, ["去", spot(), "那边转了一圈，走累了。"])],
           [(D, ["听谁说的？"]), (P, [c.pick(["我们小区老", "隔壁老", "楼下小"]), ("NAME", c.person(zh=True)["last"]),
                                  c.pick(["办了。", "说的。", "也这样。"])])],
           [(D, ["您是？"]), (P, ["我是", c.pick(["她", "他"]), kw if kw not in ("配偶",) else "爱人", "，",
                                  ("NAME", c.zfull(kin)), "。"])],
           [(D, ["什么时候开始不舒服的？"]), (P, [c.date(c.day(-60, -3), "lunar", zh=True),
                                         c.pick(["那天。", "开始的。", "以后就这样了。"])])]]
    chat = [[(D, [c.prose(1, zh=True, kind="对话医")]), (P, [c.prose(1, zh=True, kind="对话患")])]
            for _ in range(r.randint(2, 5))]
    chosen = r.sample(ex, r.randint(5, 10)) + chat
    r.shuffle(chosen)
    for e in chosen:
        for who, x in e:
            turn(who, *x)


# ========================================================================================= Mixed
def t_mixed_progress(c, n):
    p = c.pt
    n.add(c.pick(["Progress Note 病程记录", "病程记录 Progress note", "Ward round 查房记录", "Admission note 入院记录"]), "\n",
          c.date(c.visit, "full", zh=c.chance(.5)), "\n\n")
    rows = [("姓名/Name", c.who(p, full=True)), ("MRN/住院号", c.mrn(zh=c.chance(.5))), ("Age/年龄", c.age_num())]
    if c.chance(.5):
        rows.append(("身份证号", c.idnum(zh=True)))
    if c.chance(.5):
        rows.append(("Tel/电话", c.phone(zh=True)))
    c.fields(n, rows, zh=c.chance(.5))
    n.add(c.who(p), c.pick(["，", ", "]), c.age(zh=c.chance(.5)), c.pick([", admitted on ", "，于"]),
          c.date(c.day(-5, -1), c.pick(["full", "short"]), zh=c.chance(.5)),
          c.pick([" for ", "因"]), c.pick(EN_DX + ZH_DX), c.pick(["入院。", ". ", "。"]), c.pick(["BP ", "血压"]),
          f"{c.r.randint(100, 170)}/{c.r.randint(60, 95)}",
          c.pick(["mmHg，", ", "]), c.pick(EN_TRAPS + ZH_TRAPS), "。", c.prose(c.r.randint(1, 2)), "\n")
    lines = [["Plan: ", c.pick(ZH_MEDS), "; f/u with ", c.who(c.person(), "clin"),
              c.pick([" next week", " in 心内科 clinic", " 门诊"])],
             (lambda w, q: ["家属 ", c.who(q, "rel"), " (", c.pick(ZH_REL[q["sex"]]), ") 电话 ",
                            c.phone(zh=True)])(*c.relative()),
             ["外院 ", c.facility(zh=c.chance(.6)), " CT (", c.date(c.day(-30, -3), "full", zh=c.chance(.5)), "): ",
              c.pick(EN_FIND)],
             ["Discussed with ", c.who(c.person(), "clin"), "，同意 ", c.pick(["PCI", "CT复查", "手术", "保守治疗"]), "."],
             ["Address 住址: ", c.zaddress()], ["Email: ", c.email()],
             ["Since ", c.year_alone(), " on ", c.pick(EN_MEDS), "."],
             ["复诊 ", c.date(c.day(7, 30), c.pick(["full", "short"]), zh=c.chance(.5)), "，", c.pick(ZH_NEG_FAC), " 随访。"]]
    c.bullets(n, c.r.sample(lines, c.r.randint(3, 6)) + [c.prose(1) for _ in range(c.r.randint(1, 3))])
    n.add("\n", c.pick(["Signed ", "医师: ", "记录者 "]), c.who(c.person(), "clin"), " ",
          c.date(c.visit, "full", zh=c.chance(.5)), "\n")


# ============================================================================ held-out templates
def t_consult(c, n):
    p = c.pt
    req = c.person()
    n.add(c.pick(["CONSULTATION NOTE", "Consult Note", "Inpatient Consultation"]), " - ",
          c.pick(["Nephrology", "Infectious Disease", "Cardiology", "Geriatrics"]), "\n")
    n.add("Date of consult: ", c.date(c.visit, "full"), "\nRequesting physician: ", c.who(req, "clin"), "\nPatient: ",
          c.who(p, full=True),
          "   Age: ", c.age_num(), "   MRN ", c.mrn(), "\n\n")
    n.add("Reason for consultation: ", c.pick(EN_DX), ".\n\nThank you for asking us to see ", c.who(p), ". ")
    en_hpi(c, n)
    for s in c.r.sample([en_pmh, en_meds, en_labs, en_exam, en_social], 3):
        s(c, n)
    n.add("IMPRESSION AND RECOMMENDATIONS:\n")
    recs = [["Agree with ", c.pick(EN_MEDS), "."], ["Obtain ", c.pick(EN_IMAGING), "."], [c.prose(1, zh=False)],
            [c.prose(2, zh=False)],
            ["Discussed with ", c.who(req, "clin"), " at ", c.pick(["15:10", "0830", "noon"]), "."],
            ["We will follow along; page ", c.phone(), " with questions."],
            ["Outpatient follow-up at ", c.facility(), " on ", c.date(c.day(10, 40), "short"), "."]]
    c.bullets(n, c.r.sample(recs, c.r.randint(2, 4)))
    n.add("\n")
    en_signature(c, n)


def t_fax_cover(c, n):
    sender, to = c.person(), c.person()
    n.case = n.case or (("upper" if c.chance(.5) else None))
    n.add(c.pick(["FAX COVER SHEET", "FACSIMILE TRANSMITTAL", "Fax"]), "\n", c.facility(), "\n", c.address(), "\n\n")
    c.fields(n, [("TO", c.who(to, "clin")), ("FAX", c.phone("FAX")), ("PHONE", c.phone()), ("FROM", c.who(sender, "nurse")),
                 ("DATE", c.date(c.visit, "full")), ("PAGES", f"{c.r.randint(2, 14)} (including cover)"),
                 ("RE", [c.who(c.pt, full=True), "  DOB ", c.date(c.pt["dob"], "full")])])
    n.add(c.pick(["URGENT", "Please review", "For your records"]), ": ",
          c.pick(["referral", "lab results", "discharge summary", "prior authorization"]),
          " for ", c.who(c.pt), ". Member ID ", c.plan(), ". Acct ", c.account(), ".\n",
          c.pick(["Notes: ", "Comments: ", "Message: "]), c.prose(c.r.randint(1, 3), zh=False), "\n\n")
    n.add("CONFIDENTIALITY NOTICE: The documents accompanying this fax contain confidential health information. "
          "If you received this in error, call ", c.phone(), " and destroy all copies.\n")


def t_zh_referral(c, n):
    p = c.pt
    n.add(c.pick(["双向转诊单", "转诊单（转出）", "轉診單", "会诊转诊记录"]), "\n\n")
    c.fields(n, zh_id_rows(c, [("转出单位", c.facility(zh=True)), ("转入单位", c.facility(zh=True)),
                               ("转诊日期", c.date(c.visit, "full", zh=True))]), zh=True)
    n.add("初步诊断：", c.pick(ZH_DX), "\n转诊原因：", c.pick(["病情加重，需进一步诊治", "需行介入治疗", "本院条件有限"]), "。\n")
    zh_hpi(c, n, lead="病情摘要")
    n.add(c.pick(["注意事项：", "转诊说明：", "备注："]), c.prose(c.r.randint(1, 3), zh=True), "\n")
    n.add("联系人：", c.zwho(c.person(zh=True), "rel"), "　电话：", c.phone(zh=True), "　传真：", c.phone("FAX", zh=True), "\n")
    n.add("转诊医师：", c.zwho(c.person(zh=True), "clin"), "　联系电话：", c.phone(zh=True), "\n")


def t_mixed_handoff(c, n):
    p = c.pt
    n.add(c.pick(["SBAR handoff 交班", "交接班记录 Handoff", "Nursing handover 护理交班"]), " ",
          c.date(c.visit, "full", zh=c.chance(.5)), " ", c.pick(["19:00", "07:30"]), "\n")
    n.add("S: ", c.who(p, full=True), c.pick([", ", "，"]), c.age(zh=c.chance(.5)), c.pick([", bed ", "，"]),
          f"{c.r.randint(1, 40)}床, ", c.pick(EN_DX + ZH_DX), "\n")
    n.add("B: ", c.pick(ZH_DX), " since ", c.year_alone(), "; ", c.pick(EPONYMS), "; 住院号 ", c.mrn(zh=True), "; ",
          c.prose(c.r.randint(1, 2)), "\n")
    n.add("A: ", c.pick(ZH_TRAPS), ", ", c.pick(EN_TRAPS), "; ", c.pick(["stable", "病情平稳", "需密切观察"]), "; ",
          c.prose(c.r.randint(1, 2)), "\n")
    n.add("R: ", c.pick(["recheck K 明早", "notify Dr. on call if SBP < 90", "家属明天来"]), "; 家属 ", c.who(c.person(), "rel"),
          " ", c.phone(zh=True),
          c.pick([[""], ["; email ", c.email()]]))
    n.add("\nHandoff: ", c.who(c.person(), "nurse"), " → ", c.who(c.person(), "nurse"), "\n")


# ============================================================================== registry, splits
TEMPLATES = {  # name: (lang, function, weight, held out)
    "discharge_summary": ("en", t_discharge, 10, False), "admission_hp": ("en", t_admission, 8, False),
    "progress_soap": ("en", t_progress, 8, False), "radiology": ("en", t_radiology, 6, False),
    "operative": ("en", t_operative, 5, False), "pathology": ("en", t_pathology, 4, False),
    "referral_letter": ("en", t_referral_letter, 6, False), "nursing": ("en", t_nursing, 5, False),
    "lab_report": ("en", t_lab_report, 5, False), "dialogue_en": ("en", t_dialogue_en, 12, False),
    "zh_outpatient": ("zh", t_zh_outpatient, 7, False), "zh_discharge": ("zh", t_zh_discharge, 6, False),
    "zh_lab": ("zh", t_zh_lab, 3, False), "zh_dialogue": ("zh", t_zh_dialogue, 6, False),
    "mixed_progress": ("mixed", t_mixed_progress, 5, False),
    "consult_note": ("en", t_consult, 4, True), "fax_cover": ("en", t_fax_cover, 3, True),
    "zh_referral": ("zh", t_zh_referral, 4, True), "mixed_handoff": ("mixed", t_mixed_handoff, 3, True),
}
LANG_W = {"en": .55, "zh": .3, "mixed": .15}


def make_note(rng, pools, held):
    lang = pick_w(rng, LANG_W)
    name = pick_w(rng, [(k, v[2]) for k, v in TEMPLATES.items() if v[0] == lang and v[3] == held])
    c = Ctx(rng, pools, held, lang)
    surface = pick_w(rng, {"plain": 80, "lower": 5, "upper": 5,
                           "ocr": 10}) if lang != "zh" else pick_w(rng, {"plain": 90, "ocr": 10})
    n = Note(rng, case=surface if surface in ("lower", "upper") else None,
             ocr=rng.uniform(.005, .03) if surface == "ocr" else 0.0)
    n.hook = lambda: c.chance(.4) and c.misc(n)
    if c.chance(.12):  # an unlabelled number above the note: barcode, accession, scan reference
        n.add(c.loose_id(), "\n")
    TEMPLATES[name][1](c, n)
    if c.chance(.12):
        n.add("\n", c.loose_id(), c.pick(["", "  Page 1 of 1", " scanned"]), "\n")
    tag = name if surface == "plain" else f"{name}+{surface}"
    return n.record(lang, tag, c.locale)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--notes", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    t0 = time.time()
    rng = random.Random(a.seed)
    Faker.seed(a.seed)
    pools = build_pools(a.seed)
    os.makedirs(a.out, exist_ok=True)
    files = {s: open(os.path.join(a.out, f"{s}.jsonl"), "w", encoding="utf-8") for s in ("train", "val", "heldout")}
    langs, cats, tmpl = Counter(), Counter(), Counter()
    try:
        for _ in range(a.notes):
            x = rng.random()
            split = "heldout" if x < .10 else "val" if x < .15 else "train"
            rec = make_note(rng, pools, split == "heldout")
            files[split].write(json.dumps(rec, ensure_ascii=False) + "\n")
            langs[split, rec["lang"]] += 1
            tmpl[split, rec["template"].split("+")[0]] += 1
            cats.update(e["category"] for e in rec["entities"])
    finally:
        for f in files.values():
            f.close()
    dt_s = time.time() - t0
    print(f"{a.notes} notes in {dt_s:.1f} s -> {a.out}")
    for split in ("train", "val", "heldout"):
        per = {l: langs[split, l] for l in ("en", "zh", "mixed")}
        print(f"  {split:8s} {sum(per.values()):6d}  {per}")
    print("  entities:", ", ".join(f"{k} {cats[k]}" for k in CATEGORIES))
    print("  heldout templates:", sorted({t for (s, t) in tmpl if s == "heldout"}))


if __name__ == "__main__":
    sys.exit(main())
