#!/usr/bin/env python3
"""Synthetic source-note -> draft pairs for medgen's seven clinical tasks.

    python examples/finetune/make_task_data.py --out DIR [--n-per-task 60] [--seed 0]
                                               [--zh-fraction 0.1]

writes DIR/train.jsonl, DIR/validation.jsonl and DIR/test.jsonl (80/10/10 per task), one
example a line:

    {"task": "discharge_summary", "note": "<source note>", "target": "<the draft>"}

The data. Every note is invented: admission and progress notes (discharge_summary), radiology
reports without their impression (radiology_impression), doctor-patient dialogues and visit
notes (soap_note), laboratory, ECG, pathology, endoscopy and lung-function results
(diagnostic_report), operative dictations and OR records (operative_note), clinic and
discharge notes written in jargon (patient_explanation) and patients' portal messages
(question_summary). Surrogate identifiers (names, dates, MRNs, phone numbers, addresses,
accession numbers) come from Faker and sit in the notes where real notes have them; the
clinical content (diagnoses, medications with doses, routes and frequencies, vitals, labs with
units, procedures, findings and their negations) is drawn from pools written for each task,
with the numbers drawn in plausible ranges. Layout, section order, wording, abbreviations and
length (about 60-250 words) vary from note to note. About --zh-fraction of the notes of each
task are in Chinese; their drafts use the catalog's Chinese headings.

The drafts are what `medgen task <name>` should print: the task's required sections with the
canonical headings of medgen-core/src/tasks/catalog.rs, in its order ("Diagnoses:",
"Hospital Course:", "Medications:", "Follow-up:" for a discharge summary), each on its own
line followed by its text, a blank line between sections, no other heading, no repeated
sentence. A draft states only what its note states: every digit in it occurs in the note
(numbered impression lines aside), every medication and dose comes from the note, negated
findings stay negated, and it names no identifier at all. The last point matters because
`medgen finetune` de-identifies the note and the draft separately, so the placeholders the two
get ([NAME_1], [DATE_2], ...) need not match; a draft without identifiers cannot teach the
model to invent one. The script checks all of this for every pair it writes and stops on a
violation.

How `make task-adapter` uses it: it runs this script and then

    medgen finetune --train DIR/train.jsonl --validation DIR/validation.jsonl --method lora ...

which reads the {"task", "note", "target"} lines, de-identifies them, renders each note with
the task's chat prompt (tasks::Task::chat_messages, in the note's language) and trains a LoRA
adapter to answer with the draft. DIR/test.jsonl is held out for evaluating the adapter with
`medgen task` (sections present and in order, checks, ROUGE against the drafts).

Needs only the standard library and Faker (pinned in requirements/test.txt); no network. The
same --seed gives byte-identical files.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
from datetime import date, timedelta
from pathlib import Path

from faker import Faker

# The required sections of each task, in order: (canonical English name, Chinese name), as in
# medgen-core/src/tasks/catalog.rs.
SECTIONS = {
    "discharge_summary": [("Diagnoses", "出院诊断"), ("Hospital Course", "诊疗经过"),
                          ("Medications", "出院带药"), ("Follow-up", "出院医嘱")],
    "radiology_impression": [("Impression", "印象")],
    "soap_note": [("Subjective", "主观资料"), ("Objective", "客观资料"), ("Assessment", "评估"),
                  ("Plan", "计划")],
    "diagnostic_report": [("Indication", "检查目的"), ("Findings", "检查所见"), ("Conclusion", "诊断结论")],
    "operative_note": [("Preoperative Diagnosis", "术前诊断"), ("Postoperative Diagnosis", "术后诊断"),
                       ("Procedure", "手术名称"), ("Anesthesia", "麻醉方式"), ("Findings", "术中所见"),
                       ("Estimated Blood Loss", "出血量"), ("Complications", "并发症")],
    "patient_explanation": [("What We Found", "病情说明"), ("Next Steps", "下一步")],
    "question_summary": [("Question", "问题")],
}
TASKS = list(SECTIONS)


class Retry(Exception):
    """A draw to throw away (an identifier that also reads as a word of the draft)."""


# ---------------------------------------------------------------------------------------------
# Context: the random source, the Faker of the note's language, and the identifiers it used.


class Ctx:
    def __init__(self, r: random.Random, fake: Faker, zh: bool):
        self.r, self.f, self.zh = r, fake, zh
        self.ids: list[str] = []
        self.date_fmt = r.choice(["%m/%d/%Y", "%Y-%m-%d", "%b %d, %Y", "%d %b %Y", "%m/%d/%y"])
        self.zh_date_fmt = r.choice(["cn", "iso"])

    def T(self, en: str, zh: str) -> str:
        return zh if self.zh else en

    def ch(self, *options):
        return self.r.choice(options)

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def idf(self, s: str) -> str:
        self.ids.append(s)
        return s

    def date(self, d: date) -> str:
        if self.zh:
            s = f"{d.year}年{d.month}月{d.day}日" if self.zh_date_fmt == "cn" else d.isoformat()
        else:
            s = d.strftime(self.date_fmt)
        return self.idf(s)

    def doctor(self, title: bool = True) -> str:
        if self.zh:
            return self.idf(self.f.name()) + (self.ch("医师", "主治医师", "主任医师", "医生") if title else "")
        return "Dr. " + self.idf(self.f.last_name())

    def hospital(self) -> str:
        if self.zh:
            return self.idf(self.f.city_name()) + self.ch("市第一人民医院", "市中心医院", "市人民医院", "医科大学附属医院")
        return self.ch(f"{self.idf(self.f.last_name())} Memorial Hospital", f"{self.idf(self.f.city())} General Hospital",
                       f"St. {self.idf(self.f.last_name())} Medical Center", f"{self.idf(self.f.city())} Regional Medical Center")

    def phone(self) -> str:
        if self.zh:
            return self.idf(self.f.phone_number())
        return self.idf(self.f.numerify(self.ch("(%##) %##-####", "%##-%##-####", "%##.%##.####")))

    def accession(self) -> str:
        return self.idf(self.f.bothify(self.ch("RA########", "ACC-#######", "CT%#######", "US-%######", "R#########")))


class Person:
    """The patient of a note: name, sex, age, date of birth, MRN, phone, address, visit date."""

    def __init__(self, c: Ctx, lo: int = 18, hi: int = 88, sex: str | None = None):
        r, f = c.r, c.f
        self.sex = sex or r.choice("MF")
        self.visit = f.date_between_dates(date(2019, 1, 1), date(2025, 12, 31))
        age = r.randint(lo, hi)
        dob = self.visit - timedelta(days=int(365.25 * age) + r.randint(1, 360))
        self.age = self.visit.year - dob.year - ((self.visit.month, self.visit.day) < (dob.month, dob.day))
        self._dob = dob
        if c.zh:
            self.name = c.idf(f.last_name() + (f.first_name_male() if self.sex == "M" else f.first_name_female()))
            self.last = self.name[0]
            self.address = c.idf(f.address())
        else:
            first = f.first_name_male() if self.sex == "M" else f.first_name_female()
            self.last = c.idf(f.last_name())
            c.idf(first)
            self.name = c.idf(f"{first} {self.last}")
            self.address = (c.idf(f.street_address()) + ", " + c.idf(f.city()) + ", " + f.state_abbr() + " "
                            + c.idf(f.zipcode()))
        self.mrn = c.idf(f.numerify(c.ch("########", "%#######", "%######", "MRN%######")).replace("MRN", ""))
        self.phone = c.phone()
        self.c = c

    def dob(self) -> str:
        return self.c.date(self._dob)

    def title(self) -> str:
        """'Mr. Smith' / '王先生'."""
        c = self.c
        if c.zh:
            return self.last + ("先生" if self.sex == "M" else "女士")
        return ("Mr. " if self.sex == "M" else c.ch("Mrs. ", "Ms. ")) + self.last

    def noun(self) -> str:
        return self.c.T("man" if self.sex == "M" else "woman", "男性" if self.sex == "M" else "女性")

    def he(self, cap: bool = True) -> str:
        w = "he" if self.sex == "M" else "she"
        return w.capitalize() if cap else w

    def his(self) -> str:
        return "his" if self.sex == "M" else "her"

    def mf(self) -> str:
        return self.c.T("M" if self.sex == "M" else "F", "男" if self.sex == "M" else "女")


def num(r: random.Random, lo: float, hi: float, dec: int = 0) -> str:
    v = r.uniform(lo, hi)
    return f"{v:.{dec}f}" if dec else str(int(round(v)))


def join(c: Ctx, items: list[str], word: str = "and") -> str:
    items = [i for i in items if i]
    if c.zh:
        return "、".join(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {word} " + items[-1]


def cap(s: str) -> str:
    return s[:1].upper() + s[1:] if s else s


def sentence(c: Ctx, s: str) -> str:
    """s with a capital letter and a full stop."""
    s = s.strip()
    if c.zh:
        return s if s.endswith(("。", "！", "？")) else s + "。"
    s = cap(s)
    return s if s.endswith((".", "!", "?")) else s + "."


# ---------------------------------------------------------------------------------------------
# Medications.

FREQ = {  # key: (abbreviated, in words, Chinese)
    "daily": ("daily", "once daily", "每日1次"),
    "bid": ("BID", "twice daily", "每日2次"),
    "tid": ("TID", "three times daily", "每日3次"),
    "qid": ("QID", "four times daily", "每日4次"),
    "qhs": ("at bedtime", "at bedtime", "每晚1次"),
    "q6h": ("q6h", "every 6 hours", "每6小时1次"),
    "q8h": ("q8h", "every 8 hours", "每8小时1次"),
    "q12h": ("q12h", "every 12 hours", "每12小时1次"),
    "q4h_prn": ("q4h PRN", "every 4 hours as needed", "必要时每4小时1次"),
    "q6h_prn": ("q6h PRN", "every 6 hours as needed", "必要时每6小时1次"),
    "q8h_prn": ("q8h PRN", "every 8 hours as needed", "必要时每8小时1次"),
    "prn_cp": ("PRN chest pain", "as needed for chest pain", "胸痛时"),
    "ac": ("TID with meals", "with each meal", "三餐前"),
    "am": ("every morning", "every morning", "每日晨起1次"),
}
ROUTE = {
    "po": ("PO", "by mouth", "口服"),
    "iv": ("IV", "IV", "静脉滴注"),
    "sc": ("SC", "under the skin", "皮下注射"),
    "inh": ("inhaled", "inhaled", "吸入"),
    "sl": ("SL", "under the tongue", "舌下含服"),
    "neb": ("nebulized", "nebulized", "雾化吸入"),
}
MEDS = {  # key: (English, Chinese, doses, route, frequencies); doses may be (English, Chinese)
    "lisinopril": ("lisinopril", "赖诺普利", ["10 mg", "20 mg", "40 mg"], "po", ["daily"]),
    "amlodipine": ("amlodipine", "氨氯地平", ["5 mg", "10 mg"], "po", ["daily"]),
    "losartan": ("losartan", "氯沙坦", ["25 mg", "50 mg", "100 mg"], "po", ["daily"]),
    "hctz": ("hydrochlorothiazide", "氢氯噻嗪", ["12.5 mg", "25 mg"], "po", ["daily"]),
    "metformin": ("metformin", "二甲双胍", ["500 mg", "1000 mg"], "po", ["bid"]),
    "atorvastatin": ("atorvastatin", "阿托伐他汀", ["20 mg", "40 mg", "80 mg"], "po", ["qhs", "daily"]),
    "rosuvastatin": ("rosuvastatin", "瑞舒伐他汀", ["10 mg", "20 mg"], "po", ["daily"]),
    "levothyroxine": ("levothyroxine", "左甲状腺素", ["50 mcg", "75 mcg", "88 mcg", "100 mcg"], "po", ["daily"]),
    "omeprazole": ("omeprazole", "奥美拉唑", ["20 mg", "40 mg"], "po", ["daily"]),
    "pantoprazole": ("pantoprazole", "泮托拉唑", ["40 mg"], "po", ["bid"]),
    "tamsulosin": ("tamsulosin", "坦索罗辛", ["0.4 mg"], "po", ["qhs"]),
    "sertraline": ("sertraline", "舍曲林", ["50 mg", "100 mg"], "po", ["daily"]),
    "allopurinol": ("allopurinol", "别嘌醇", ["100 mg", "300 mg"], "po", ["daily"]),
    "aspirin": ("aspirin", "阿司匹林", (["81 mg"], ["100 mg"]), "po", ["daily"]),
    "clopidogrel": ("clopidogrel", "氯吡格雷", ["75 mg"], "po", ["daily"]),
    "ticagrelor": ("ticagrelor", "替格瑞洛", ["90 mg"], "po", ["bid"]),
    "apixaban": ("apixaban", "阿哌沙班", ["5 mg"], "po", ["bid"]),
    "metoprolol": ("metoprolol succinate", "琥珀酸美托洛尔", ["25 mg", "50 mg"], "po", ["daily"]),
    "carvedilol": ("carvedilol", "卡维地洛", ["3.125 mg", "6.25 mg", "12.5 mg"], "po", ["bid"]),
    "furosemide": ("furosemide", "呋塞米", ["20 mg", "40 mg"], "po", ["daily"]),
    "spironolactone": ("spironolactone", "螺内酯", ["25 mg"], "po", ["daily"]),
    "nitroglycerin": ("nitroglycerin", "硝酸甘油", ["0.4 mg"], "sl", ["prn_cp"]),
    "glargine": ("insulin glargine", "甘精胰岛素", ["12 units", "16 units", "20 units", "24 units"], "sc", ["qhs"]),
    "lispro": ("insulin lispro", "赖脯胰岛素", ["4 units", "5 units", "6 units"], "sc", ["ac"]),
    "amox_clav": ("amoxicillin-clavulanate", "阿莫西林克拉维酸钾", ["875 mg"], "po", ["bid"]),
    "amoxicillin": ("amoxicillin", "阿莫西林", ["500 mg", "875 mg"], "po", ["bid", "tid"]),
    "doxycycline": ("doxycycline", "多西环素", ["100 mg"], "po", ["bid"]),
    "cefpodoxime": ("cefpodoxime", "头孢泊肟", ["200 mg"], "po", ["bid"]),
    "cephalexin": ("cephalexin", "头孢氨苄", ["500 mg"], "po", ["qid"]),
    "ciprofloxacin": ("ciprofloxacin", "环丙沙星", ["500 mg"], "po", ["bid"]),
    "nitrofurantoin": ("nitrofurantoin", "呋喃妥因", ["100 mg"], "po", ["bid"]),
    "clarithromycin": ("clarithromycin", "克拉霉素", ["500 mg"], "po", ["bid"]),
    "prednisone": ("prednisone", "泼尼松", ["40 mg"], "po", ["daily"]),
    "tiotropium": ("tiotropium", "噻托溴铵", ["18 mcg"], "inh", ["daily"]),
    "albuterol": ("albuterol", "沙丁胺醇", ["2 puffs"], "inh", ["q4h_prn", "q6h_prn"]),
    "acetaminophen": ("acetaminophen", "对乙酰氨基酚", ["500 mg", "650 mg", "1000 mg"], "po", ["q6h_prn", "q8h_prn"]),
    "ibuprofen": ("ibuprofen", "布洛芬", ["400 mg", "600 mg"], "po", ["q8h_prn", "tid"]),
    "naproxen": ("naproxen", "萘普生", ["500 mg"], "po", ["bid"]),
    "ondansetron": ("ondansetron", "昂丹司琼", ["4 mg"], "po", ["q8h_prn"]),
    "oxycodone": ("oxycodone", "羟考酮", ["5 mg"], "po", ["q6h_prn", "q4h_prn"]),
    "ferrous": ("ferrous sulfate", "硫酸亚铁", ["325 mg"], "po", ["daily"]),
    "colchicine": ("colchicine", "秋水仙碱", ["0.6 mg"], "po", ["daily", "bid"]),
    "sumatriptan": ("sumatriptan", "舒马普坦", ["50 mg", "100 mg"], "po", ["once"]),
    "fluticasone": ("fluticasone nasal spray", "氟替卡松鼻喷雾剂", ["2 sprays"], "nasal", ["daily"]),
    "cyclobenzaprine": ("cyclobenzaprine", "环苯扎林", ["5 mg", "10 mg"], "po", ["qhs"]),
    "famotidine": ("famotidine", "法莫替丁", ["20 mg"], "po", ["bid"]),
    "diltiazem": ("diltiazem", "地尔硫卓", ["120 mg", "180 mg"], "po", ["daily"]),
    "docusate": ("docusate", "多库酯钠", ["100 mg"], "po", ["bid"]),
    "montelukast": ("montelukast", "孟鲁司特", ["10 mg"], "po", ["qhs"]),
    "budesonide_formoterol": ("budesonide-formoterol", "布地奈德福莫特罗", ["2 puffs"], "inh", ["bid"]),
}
FREQ["once"] = ("once at onset, may repeat once", "at the start of a headache, may repeat once",
                "头痛发作时服用，必要时可重复1次")
ROUTE["nasal"] = ("in each nostril", "in each nostril", "每侧鼻孔")


class Med:
    def __init__(self, c: Ctx, key: str, dose: str | None = None, freq: str | None = None,
                 route: str | None = None, extra: tuple[str, str, str] | None = None):
        en, zh, doses, rt, freqs = MEDS[key]
        if isinstance(doses, tuple):
            doses = doses[1] if c.zh else doses[0]
        self.c, self.key = c, key
        self.name = zh if c.zh else en
        self.dose = dose or c.r.choice(doses)
        self.route = route or rt
        self.freq = freq or c.r.choice(freqs)
        self.extra = extra

    def s(self, style: str = "abbr", capital: bool = False) -> str:
        c = self.c
        if c.zh:
            d = self.dose.replace(" units", "单位").replace(" puffs", "喷").replace(" sprays", "喷")
            s = f"{self.name} {d} {ROUTE[self.route][2]} {FREQ[self.freq][2]}"
            return s + ("，" + self.extra[2] if self.extra else "")
        i = 0 if style == "abbr" else 1
        if self.route == "nasal":
            s = f"{self.name} {self.dose} {ROUTE[self.route][i]} {FREQ[self.freq][i]}"
        else:
            s = f"{self.name} {self.dose} {ROUTE[self.route][i]} {FREQ[self.freq][i]}"
        if self.extra:
            s += " " + self.extra[i]
        return cap(s) if capital else s


def course_of(c: Ctx, total: int, left: int | None = None) -> tuple[str, str, str]:
    """The 'extra' of an antibiotic course: to complete `total` days (`left` more)."""
    if left is None:
        return (f"x {total} days", f"for {total} days", f"共{total}天")
    return (f"to complete {total} days ({left} more days)", f"for {left} more days (a {total}-day course)",
            f"再服{left}天（共{total}天疗程）")


# Comorbidities: key -> (name, abbreviation, Chinese, home medication key or None, sex or None).
COMORB = {
    "htn": ("hypertension", "HTN", "高血压", "lisinopril", None),
    "htn2": ("hypertension", "HTN", "高血压", "amlodipine", None),
    "dm2": ("type 2 diabetes", "T2DM", "2型糖尿病", "metformin", None),
    "hld": ("hyperlipidemia", "HLD", "高脂血症", "atorvastatin", None),
    "hypothyroid": ("hypothyroidism", "hypothyroidism", "甲状腺功能减退症", "levothyroxine", None),
    "gerd": ("gastroesophageal reflux disease", "GERD", "胃食管反流病", "omeprazole", None),
    "bph": ("benign prostatic hyperplasia", "BPH", "良性前列腺增生", "tamsulosin", "M"),
    "depression": ("depression", "depression", "抑郁症", "sertraline", None),
    "gout": ("gout", "gout", "痛风", "allopurinol", None),
}


def comorbidities(c: Ctx, p: Person, k: int, exclude=(), force=()) -> list[tuple[str, str, Med | None]]:
    """[(full name, short name, home medication)] for k conditions, the forced ones first."""
    keys = list(force)
    pool = [key for key, v in COMORB.items()
            if key not in exclude and key not in keys and (v[4] is None or v[4] == p.sex)]
    c.r.shuffle(pool)
    for key in pool:
        if len(keys) >= max(k, len(force)):
            break
        if key.rstrip("2") in [x.rstrip("2") for x in keys]:
            continue
        keys.append(key)
    out = []
    for key in keys:
        en, ab, zh, med, _ = COMORB[key]
        out.append((c.T(en, zh), c.T(ab, zh), Med(c, med) if med else None))
    return out


def vitals(c: Ctx, t=(36.5, 37.3), hr=(64, 92), sbp=(112, 138), dbp=(66, 86), rr=(14, 18), spo2=(95, 99),
           o2: str | None = None) -> dict:
    r = c.r
    temp = r.uniform(*t)
    if c.zh:
        tstr = f"{temp:.1f}℃"
    elif c.chance(0.35):
        tstr = f"{temp * 9 / 5 + 32:.1f} °F"
    else:
        tstr = f"{temp:.1f} °C"
    return {"t": tstr, "tc": temp, "hr": str(r.randint(*hr)), "bp": f"{r.randint(*sbp)}/{r.randint(*dbp)}",
            "rr": str(r.randint(*rr)), "spo2": str(r.randint(*spo2)), "o2": o2 or c.T("room air", "未吸氧")}


def vit_str(c: Ctx, v: dict, style: int = 0, keys=("t", "hr", "bp", "rr", "spo2")) -> str:
    if c.zh:
        parts = {"t": f"T {v['t']}", "hr": f"P {v['hr']}次/分", "rr": f"R {v['rr']}次/分",
                 "bp": f"BP {v['bp']} mmHg", "spo2": f"SpO2 {v['spo2']}%（{v['o2']}）"}
        return "，".join(parts[k] for k in keys)
    if style == 0:
        o2 = "RA" if v["o2"] == "room air" else v["o2"]
        parts = {"t": f"T {v['t']}", "hr": f"HR {v['hr']}", "bp": f"BP {v['bp']}", "rr": f"RR {v['rr']}",
                 "spo2": f"SpO2 {v['spo2']}% on {o2}"}
    else:
        parts = {"t": f"temperature {v['t']}", "hr": f"heart rate {v['hr']}", "bp": f"blood pressure {v['bp']} mmHg",
                 "rr": f"respiratory rate {v['rr']}", "spo2": f"oxygen saturation {v['spo2']}% on {v['o2']}"}
    return ", ".join(parts[k] for k in keys)


def side(c: Ctx) -> tuple[str, str]:
    return c.ch(("right", "右"), ("left", "左"))


# ---------------------------------------------------------------------------------------------
# Assembling notes of the right length.


def size(text: str) -> float:
    """Length in words; a Chinese character counts as 1/1.6 of a word."""
    cjk = len(re.findall(r"[\u3400-\u9fff]", text))
    latin = len(re.findall(r"[A-Za-z0-9][A-Za-z0-9'./%-]*", text))
    return latin + cjk / 1.6


def assemble(c: Ctx, blocks: list[tuple[str, bool]], hi: float = 250, sep: str = "\n") -> str:
    """The note from (text, optional) blocks, dropping optional ones at random while it is too long."""
    blocks = [b for b in blocks if b[0]]
    while size(sep.join(b[0] for b in blocks)) > hi:
        optional = [i for i, b in enumerate(blocks) if b[1]]
        if not optional:
            break
        del blocks[c.r.choice(optional)]
    return sep.join(b[0] for b in blocks).strip() + "\n"


def heading_style(c: Ctx):
    """A function writing a note's section label in one style: 'HPI:', 'Hpi -', '## HPI'."""
    style = c.r.randrange(4)

    def h(label: str) -> str:
        if c.zh:
            return c.ch(f"{label}：", f"【{label}】") if style < 3 else f"{label}："
        if style == 0:
            return f"{label.upper()}:"
        if style == 1:
            return f"{label}:"
        if style == 2:
            return f"{label} -"
        return f"{label}:"
    return h


def draft(c: Ctx, task: str, bodies: list[str]) -> str:
    """The draft: each required section's heading on its own line, then its text."""
    parts = []
    for (en, zh), body in zip(SECTIONS[task], bodies):
        parts.append(f"{zh if c.zh else en}{'：' if c.zh else ':'}\n{body.strip()}")
    return "\n\n".join(parts)


def bullets(items: list[str]) -> str:
    return "\n".join(f"- {i}" for i in items)


# =============================================================================================
# discharge_summary: admission / progress notes -> discharge summary.


def ds_pneumonia(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    lobe_en, lobe_zh = c.ch(("right lower lobe", "右下肺"), ("left lower lobe", "左下肺"), ("right middle lobe", "右中肺"),
                            ("left upper lobe", "左上肺"), ("right upper lobe", "右上肺"))
    days = r.randint(2, 7)
    wbc, crp = num(r, 11.5, 21.0, 1), num(r, 40, 220)
    v = vitals(c, t=(38.0, 39.2), hr=(96, 118), rr=(20, 26), spo2=(87, 93))
    tmax = f"{v['tc'] + r.uniform(0.2, 0.8):.1f}"
    o2day, los = r.randint(2, 3), 0
    los = o2day + r.randint(1, 2)
    oral = Med(c, c.ch("amox_clav", "cefpodoxime", "doxycycline"))
    total = c.ch(5, 7)
    left = total - los + 1 if total - los + 1 > 0 else 2
    oral.extra = course_of(c, total, left)
    effusion = c.chance(0.4)
    img = T(f"Chest X-ray: {lobe_en} consolidation" + (", small parapneumonic effusion" if effusion else ", no pleural effusion"),
            f"胸片：{lobe_zh}实变影" + ("，少量胸腔积液" if effusion else "，无胸腔积液"))
    sputum = c.ch(T("yellow", "黄"), T("green", "黄绿色"), T("rust-colored", "铁锈色"))
    return dict(
        dx=[T(f"Community-acquired pneumonia, {lobe_en}", f"社区获得性肺炎（{lobe_zh}）")],
        cc=T(f"fever and productive cough for {days} days", f"发热、咳嗽咳痰{days}天"),
        pos=[T(f"fever up to {tmax} °C", f"最高体温{tmax}℃"), T(f"{sputum} sputum", f"咳{sputum}痰"),
             T("shortness of breath on exertion", "活动后气促")],
        neg=[T("chest pain", "胸痛"), T("hemoptysis", "咯血"), c.ch(T("leg swelling", "双下肢水肿"), T("recent travel", "近期外出旅行"))],
        vit=v, exam=[T(f"crackles at the {lobe_en.split()[0]} lung base", f"{lobe_zh[:1]}下肺可闻及湿啰音")
                     if "lower" in lobe_en else T(f"bronchial breath sounds over the {lobe_en}", f"{lobe_zh}可闻及支气管呼吸音")],
        labs=[T(f"WBC {wbc} x10^9/L", f"白细胞 {wbc}×10^9/L"), T(f"CRP {crp} mg/L", f"C反应蛋白 {crp} mg/L")],
        img=[img],
        course_n=[T("Started on ceftriaxone 1 g IV daily and azithromycin 500 mg daily.",
                    "予头孢曲松 1 g 静脉滴注 每日1次联合阿奇霉素 500 mg 每日1次抗感染。"),
                  T(f"Supplemental oxygen by nasal cannula, weaned to room air on hospital day {o2day}.",
                    f"鼻导管吸氧，住院第{o2day}天停氧。"),
                  T(f"Afebrile for more than 48 hours; switched to oral {oral.name}.",
                    f"体温正常48小时以上，改为口服{oral.name}。")],
        course_t=[T(f"Treated with IV ceftriaxone and azithromycin, then switched to oral {oral.name}.",
                    f"予头孢曲松联合阿奇霉素抗感染，后改为口服{oral.name}。"),
                  T(f"Oxygen was weaned to room air by hospital day {o2day} and {p.he(False)} remained afebrile.",
                    f"住院第{o2day}天停氧，体温恢复正常。")],
        meds=[oral], med_extra=[],
        fu=[(T(f"Repeat chest X-ray in {(w := c.ch(6, 8))} weeks to document resolution.", f"{w}周后复查胸片。"),
             T(f"Repeat chest X-ray in {w} weeks.", f"{w}周后复查胸片。"))],
        pcp_weeks=c.ch(1, 2), los=los, service=T("medicine", "呼吸内科"),
        ret=(T("fever, worsening shortness of breath or chest pain", "发热、气促加重或胸痛")),
    )


def ds_chf(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    ef, days, bnp = r.randint(20, 35), r.randint(3, 10), num(r, 900, 3400)
    cr, k = num(r, 1.1, 1.8, 1), num(r, 3.6, 4.8, 1)
    w1 = r.randint(78, 112)
    lost = r.randint(3, 6)
    net = num(r, 3.2, 6.5, 1)
    los = r.randint(3, 6)
    pillows = r.randint(2, 4)
    fur = Med(c, "furosemide", dose=c.ch("20 mg", "40 mg"))
    beta = Med(c, "carvedilol")
    spiro = Med(c, "spironolactone")
    fluid = c.ch("1.5", "2")
    return dict(
        dx=[T(f"Acute on chronic systolic heart failure (EF {ef}%)", f"慢性心力衰竭急性加重（射血分数减低，EF {ef}%）")],
        cc=T(f"worsening shortness of breath and leg swelling for {days} days", f"气促加重伴双下肢水肿{days}天"),
        pos=[T(f"orthopnea, sleeping on {pillows} pillows", f"夜间不能平卧，需垫{pillows}个枕头"),
             T("weight gain", "体重增加"), T("reduced exercise tolerance", "活动耐量下降")],
        neg=[T("chest pain", "胸痛"), T("fever", "发热")],
        vit=vitals(c, hr=(88, 110), sbp=(128, 162), dbp=(74, 96), rr=(20, 26), spo2=(89, 94)),
        exam=[T("elevated JVP", "颈静脉怒张"), T("bibasilar crackles", "双肺底湿啰音"),
              T("2+ pitting edema to the knees", "双下肢2+凹陷性水肿")],
        labs=[T(f"BNP {bnp} pg/mL", f"BNP {bnp} pg/mL"), T(f"creatinine {cr} mg/dL", f"肌酐 {cr} mg/dL"),
              T(f"potassium {k} mmol/L", f"血钾 {k} mmol/L")],
        img=[T("Chest X-ray: pulmonary vascular congestion, small bilateral effusions", "胸片：肺淤血，双侧少量胸腔积液"),
             T(f"Echo: LVEF {ef}%, dilated left ventricle", f"心脏超声：左室扩大，LVEF {ef}%")],
        course_n=[T("Diuresed with furosemide 40 mg IV BID.", "予呋塞米 40 mg 静脉注射 每日2次利尿。"),
                  T(f"Net negative {net} L; weight {w1} kg on admission, {w1 - lost} kg at discharge.",
                    f"累计负平衡{net} L，体重由入院时{w1} kg降至{w1 - lost} kg。"),
                  T(f"Transitioned to oral furosemide; started {beta.name} and {spiro.name}.",
                    f"改为口服呋塞米，加用{beta.name}及{spiro.name}。")],
        course_t=[T(f"Diuresed with IV furosemide, net negative {net} L, with weight down from {w1} kg to {w1 - lost} kg.",
                    f"予静脉呋塞米利尿，负平衡{net} L，体重由{w1} kg降至{w1 - lost} kg。"),
                  T(f"Echo showed an LVEF of {ef}%. Guideline therapy was started with {beta.name} and {spiro.name}.",
                    f"心脏超声示LVEF {ef}%，加用{beta.name}及{spiro.name}。")],
        meds=[fur, beta, spiro], med_extra=[], excl=("htn2",),
        fu=[(T(f"Daily weights; call if weight rises by more than 2 kg in 3 days. Fluid restriction {fluid} L/day, low-salt diet.",
               f"每日称体重，3天内增加超过2 kg及时就诊；限水{fluid} L/日，低盐饮食。"),
             T(f"Weigh daily; fluid restriction {fluid} L/day and low-salt diet.", f"每日称体重，限水{fluid} L/日，低盐饮食。")),
            (T("Heart failure clinic in 1 week with BMP.", "1周后心衰门诊复诊并复查电解质。"),
             T("Heart failure clinic in 1 week with repeat BMP.", "1周后心衰门诊复诊，复查电解质。"))],
        pcp_weeks=None, los=los, service=T("cardiology", "心内科"),
        ret=T("worsening breathlessness, chest pain or rapid weight gain", "气促加重、胸痛或体重快速增加"),
    )


def ds_copd(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    days, los = r.randint(3, 7), r.randint(3, 5)
    wbc, ph, pco2 = num(r, 9.5, 14.5, 1), num(r, 7.31, 7.37, 2), r.randint(48, 62)
    pd = Med(c, "prednisone", extra=course_of(c, 5, max(1, 5 - los)))
    dx = Med(c, "doxycycline", extra=course_of(c, 5, max(1, 5 - los)))
    tio, alb = Med(c, "tiotropium"), Med(c, "albuterol")
    packs = r.randint(30, 60)
    return dict(
        dx=[T("Acute exacerbation of COPD", "慢性阻塞性肺疾病急性加重")],
        cc=T(f"increased shortness of breath and sputum for {days} days", f"气促加重、咳痰增多{days}天"),
        pos=[T("wheezing", "喘息"), T("change in sputum to green", "痰色转为黄绿色")],
        neg=[T("fever", "发热"), T("chest pain", "胸痛"), T("leg swelling", "下肢水肿")],
        vit=vitals(c, hr=(92, 112), rr=(22, 28), spo2=(85, 90)),
        exam=[T("diffuse expiratory wheezes", "双肺呼气相哮鸣音"), T("prolonged expiration", "呼气相延长"),
              T("accessory muscle use", "辅助呼吸肌参与呼吸")],
        labs=[T(f"WBC {wbc} x10^9/L", f"白细胞 {wbc}×10^9/L"), T(f"VBG pH {ph}, pCO2 {pco2} mmHg", f"静脉血气 pH {ph}，PCO2 {pco2} mmHg")],
        img=[T("Chest X-ray: hyperinflation, no infiltrate or pneumothorax", "胸片：肺过度充气，未见浸润影及气胸")],
        social=T(f"{packs} pack-year smoker, still smoking", f"吸烟{packs}包年，仍在吸烟"),
        course_n=[T("Treated with nebulized albuterol/ipratropium q4h, prednisone 40 mg daily and doxycycline 100 mg BID.",
                    "予沙丁胺醇/异丙托溴铵雾化吸入每4小时1次、泼尼松 40 mg 每日1次及多西环素 100 mg 每日2次治疗。"),
                  T(f"Wheezing improved; oxygen weaned to room air by hospital day {los - 1}.", f"喘息好转，住院第{los - 1}天停氧。"),
                  T("Smoking cessation counseling given.", "已进行戒烟宣教。")],
        course_t=[T("Treated with nebulized bronchodilators, prednisone and doxycycline.",
                    "予支气管扩张剂雾化、泼尼松及多西环素治疗。"),
                  T(f"Weaned to room air by hospital day {los - 1}; smoking cessation counseling was given.",
                    f"住院第{los - 1}天停氧，已行戒烟宣教。")],
        meds=[pd, dx, tio, alb], med_extra=[],
        fu=[(T("Pulmonology clinic in 2 weeks; outpatient pulmonary function tests.", "2周后呼吸科门诊复诊，门诊行肺功能检查。"),
             T("Pulmonology clinic in 2 weeks with pulmonary function tests.", "2周后呼吸科门诊复诊，行肺功能检查。"))],
        pcp_weeks=None, los=los, service=T("medicine", "呼吸内科"),
        ret=T("worsening breathlessness or fever", "气促加重或发热"),
    )


def ds_cellulitis(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    s_en, s_zh = side(c)
    days, los = r.randint(2, 5), r.randint(3, 4)
    a, b = r.randint(10, 22), r.randint(6, 14)
    wbc = num(r, 11.0, 17.5, 1)
    ceph = Med(c, "cephalexin", extra=course_of(c, c.ch(7, 10), None))
    return dict(
        dx=[T(f"Cellulitis of the {s_en} lower leg", f"{s_zh}小腿蜂窝织炎")],
        cc=T(f"redness, swelling and pain of the {s_en} lower leg for {days} days", f"{s_zh}小腿红肿疼痛{days}天"),
        pos=[T("subjective fevers", "自觉发热"), T("a small abrasion on the shin", "胫前小擦伤")],
        neg=[T("drainage", "流脓"), T("calf pain on walking", "行走时小腿疼痛")],
        vit=vitals(c, t=(37.6, 38.6), hr=(88, 104)),
        exam=[T(f"{a} x {b} cm area of erythema and warmth on the {s_en} shin", f"{s_zh}胫前{a}×{b} cm红斑，皮温升高"),
              T("no fluctuance", "未触及波动感"), T("no crepitus", "无捻发音")],
        labs=[T(f"WBC {wbc} x10^9/L", f"白细胞 {wbc}×10^9/L")],
        img=[T(f"Venous duplex of the {s_en} leg: no DVT", f"{s_zh}下肢静脉超声：未见深静脉血栓")],
        course_n=[T("Borders marked. Started cefazolin 2 g IV q8h.", "标记红斑边界，予头孢唑林 2 g 静脉滴注 每8小时1次。"),
                  T("Erythema receded within the marked borders; afebrile since hospital day 2.", "红斑较标记范围明显消退，住院第2天起体温正常。"),
                  T(f"Changed to oral {ceph.name} on hospital day {los}.", f"住院第{los}天改为口服{ceph.name}。")],
        course_t=[T("Treated with IV cefazolin with receding erythema; venous duplex showed no DVT.",
                    "予头孢唑林静脉抗感染，红斑逐渐消退；下肢静脉超声未见血栓。"),
                  T(f"Afebrile from hospital day 2 and changed to oral {ceph.name}.", f"住院第2天起体温正常，改为口服{ceph.name}。")],
        meds=[ceph], med_extra=[],
        fu=[(T("Keep the leg elevated.", "抬高患肢。"), T("Keep the leg elevated.", "抬高患肢。"))],
        pcp_days=c.ch(3, 5), los=los, service=T("medicine", "普通内科"),
        ret=T("spreading redness, fever or new pain", "红肿范围扩大、发热或新发疼痛"),
    )


def ds_pyelo(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    s_en, s_zh = side(c)
    days, los = r.randint(1, 4), r.randint(3, 4)
    v = vitals(c, t=(38.2, 39.3), hr=(98, 118), sbp=(102, 124))
    wbc, cr, tmax = num(r, 13.0, 22.0, 1), num(r, 0.8, 1.4, 1), f"{v['tc'] + r.uniform(0.2, 0.8):.1f}"
    cip = Med(c, "ciprofloxacin", extra=course_of(c, 7, 7 - los))
    return dict(
        dx=[T("Acute pyelonephritis, E. coli", "急性肾盂肾炎（大肠埃希菌）")],
        cc=T(f"fever, {s_en} flank pain and burning on urination for {days} days", f"发热伴{s_zh}侧腰痛、尿痛{days}天"),
        pos=[T(f"temperature to {tmax} °C", f"体温最高{tmax}℃"), T("chills", "寒战"), T("nausea", "恶心")],
        neg=[T("vaginal discharge" if p.sex == "F" else "penile discharge", "异常分泌物"), T("hematuria", "肉眼血尿")],
        vit=v,
        exam=[T(f"{s_en} costovertebral angle tenderness", f"{s_zh}肾区叩痛"), T("abdomen soft", "腹软")],
        labs=[T(f"WBC {wbc} x10^9/L", f"白细胞 {wbc}×10^9/L"), T(f"creatinine {cr} mg/dL", f"肌酐 {cr} mg/dL"),
              T("UA: positive leukocyte esterase and nitrite", "尿常规：白细胞酯酶及亚硝酸盐阳性"),
              T("urine culture: E. coli sensitive to ciprofloxacin", "尿培养：大肠埃希菌，对环丙沙星敏感")],
        img=[T("Renal ultrasound: no hydronephrosis", "泌尿系超声：未见肾积水")],
        course_n=[T("Ceftriaxone 1 g IV daily and IV fluids.", "予头孢曲松 1 g 静脉滴注 每日1次及补液治疗。"),
                  T("Afebrile after 48 hours. Culture grew E. coli; changed to oral ciprofloxacin.",
                    "48小时后体温正常，尿培养为大肠埃希菌，改为口服环丙沙星。")],
        course_t=[T("Treated with IV ceftriaxone and fluids; renal ultrasound showed no hydronephrosis.",
                    "予头孢曲松抗感染及补液，泌尿系超声未见肾积水。"),
                  T("Afebrile after 48 hours and changed to oral ciprofloxacin according to the urine culture.",
                    "48小时后体温正常，根据尿培养改为口服环丙沙星。")],
        meds=[cip], med_extra=[],
        fu=[], pcp_weeks=c.ch(1, 2), los=los, service=T("medicine", "普通内科"),
        ret=T("recurrent fever, vomiting or worsening flank pain", "再次发热、呕吐或腰痛加重"),
    )


def ds_nstemi(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    hours, los = r.randint(2, 12), r.randint(3, 4)
    trop, ldl, ef = num(r, 0.4, 6.5, 2), r.randint(110, 190), r.randint(40, 55)
    art_en, art_zh = c.ch(("left anterior descending", "前降支"), ("right coronary", "右冠状动脉"), ("left circumflex", "回旋支"))
    pct = c.ch(80, 85, 90, 95, 99)
    meds = [Med(c, "aspirin"), Med(c, c.ch("ticagrelor", "clopidogrel")), Med(c, "atorvastatin", dose="80 mg"),
            Med(c, "metoprolol", dose="25 mg"), Med(c, "nitroglycerin")]
    return dict(
        dx=[T("Non-ST-elevation myocardial infarction", "急性非ST段抬高型心肌梗死"),
            T(f"Coronary artery disease, {art_en} artery stenosis treated with a drug-eluting stent",
              f"冠状动脉粥样硬化性心脏病，{art_zh}狭窄已植入药物洗脱支架")],
        cc=T(f"substernal chest pressure for {hours} hours", f"胸骨后压榨样疼痛{hours}小时"),
        pos=[T("radiation to the left arm", "向左上肢放射"), T("diaphoresis", "大汗")],
        neg=[T("syncope", "晕厥"), T("palpitations", "心悸")],
        vit=vitals(c, hr=(78, 98), sbp=(132, 168), dbp=(78, 98)),
        exam=[T("regular rhythm, no murmur", "心律齐，未闻及杂音"), T("lungs clear", "双肺呼吸音清")],
        labs=[T(f"troponin I peak {trop} ng/mL", f"肌钙蛋白I峰值 {trop} ng/mL"), T(f"LDL {ldl} mg/dL", f"LDL {ldl} mg/dL")],
        img=[T("ECG: ST depression in V4-V6", "心电图：V4-V6导联ST段压低"),
             T(f"Echo: LVEF {ef}%, inferior hypokinesis" if "right" in art_en else f"Echo: LVEF {ef}%",
               f"心脏超声：LVEF {ef}%")],
        course_n=[T("Aspirin, heparin infusion and high-intensity statin started.", "予阿司匹林、肝素静脉泵入及强化他汀治疗。"),
                  T(f"Cardiac catheterization on hospital day 2: {pct}% {art_en} stenosis, treated with a drug-eluting stent.",
                    f"住院第2天冠脉造影示{art_zh}狭窄{pct}%，植入药物洗脱支架。"),
                  T("No recurrent chest pain after PCI.", "术后未再发胸痛。")],
        course_t=[T(f"Troponin I peaked at {trop} ng/mL with ST depression in V4-V6.",
                    f"肌钙蛋白I峰值{trop} ng/mL，心电图V4-V6导联ST段压低。"),
                  T(f"Catheterization showed a {pct}% {art_en} stenosis, treated with a drug-eluting stent; no further chest pain.",
                    f"冠脉造影示{art_zh}狭窄{pct}%，植入药物洗脱支架，术后无胸痛。")],
        meds=meds, med_extra=[], excl=("hld",),
        fu=[(T("Cardiology clinic in 2 weeks. Referral to cardiac rehabilitation.", "2周后心内科门诊复诊，转心脏康复。"),
             T("Cardiology clinic in 2 weeks; cardiac rehabilitation referral.", "2周后心内科门诊复诊，转心脏康复。")),
            (T("Do not stop the antiplatelet medicines without talking to cardiology.", "未经心内科同意不得停用抗血小板药物。"),
             T("Do not stop antiplatelet therapy without cardiology advice.", "不得自行停用抗血小板药物。"))],
        pcp_weeks=None, los=los, service=T("cardiology", "心内科"),
        ret=T("recurrent chest pain not relieved by nitroglycerin", "胸痛复发且含服硝酸甘油不缓解"),
    )


def ds_gibleed(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    days, los = r.randint(1, 3), r.randint(3, 5)
    h1, h0 = num(r, 6.2, 8.4, 1), num(r, 12.5, 14.5, 1)
    h2 = num(r, 8.6, 10.2, 1)
    units = c.ch(1, 2)
    bun = r.randint(38, 64)
    cm = c.ch("1", "1.5", "2")
    hp = c.chance(0.5)
    meds = [Med(c, "pantoprazole", extra=("x 8 weeks", "for 8 weeks", "共8周"))]
    if hp:
        meds += [Med(c, "amoxicillin", dose="1000 mg", freq="bid", extra=course_of(c, 14)),
                 Med(c, "clarithromycin", extra=course_of(c, 14))]
    return dict(
        dx=[T("Upper GI bleed from a duodenal ulcer", "十二指肠溃疡并上消化道出血"),
            T("Acute blood loss anemia", "急性失血性贫血")] + ([T("Helicobacter pylori infection", "幽门螺杆菌感染")] if hp else []),
        cc=T(f"black tarry stools for {days} days and lightheadedness", f"黑便{days}天伴头晕"),
        pos=[T("ibuprofen use for knee pain", "因膝痛自服布洛芬"), T("fatigue", "乏力")],
        neg=[T("abdominal pain", "腹痛"), T("hematemesis", "呕血")],
        vit=vitals(c, hr=(102, 122), sbp=(94, 112), dbp=(54, 68)),
        exam=[T("pale conjunctivae", "睑结膜苍白"), T("melena on rectal exam", "直肠指检见黑便"), T("abdomen nontender", "腹部无压痛")],
        labs=[T(f"hemoglobin {h1} g/dL (baseline {h0})", f"血红蛋白 {h1} g/dL（基线{h0}）"), T(f"BUN {bun} mg/dL", f"尿素氮 {bun} mg/dL")],
        img=[],
        course_n=[T(f"Transfused {units} unit(s) of packed red cells; pantoprazole 40 mg IV BID.",
                    f"输注红细胞{units}单位，泮托拉唑 40 mg 静脉滴注 每日2次。"),
                  T(f"EGD on hospital day 2: {cm} cm duodenal bulb ulcer with a visible vessel, treated with clips and epinephrine.",
                    f"住院第2天胃镜示十二指肠球部{cm} cm溃疡伴血管显露，予钛夹及肾上腺素止血。"),
                  T("Biopsy positive for H. pylori." if hp else "H. pylori biopsy negative.",
                    "活检幽门螺杆菌阳性。" if hp else "幽门螺杆菌活检阴性。"),
                  T(f"Hemoglobin stable at {h2} g/dL for 48 hours.", f"血红蛋白稳定于{h2} g/dL达48小时。")],
        course_t=[T(f"Hemoglobin was {h1} g/dL on arrival; {p.he(False)} received {units} unit(s) of packed red cells and IV pantoprazole.",
                    f"入院血红蛋白{h1} g/dL，输注红细胞{units}单位并予静脉泮托拉唑。"),
                  T(f"EGD found a {cm} cm duodenal ulcer with a visible vessel, treated endoscopically; hemoglobin then stable at {h2} g/dL.",
                    f"胃镜示十二指肠{cm} cm溃疡伴血管显露，内镜下止血后血红蛋白稳定于{h2} g/dL。")],
        meds=meds, med_extra=[(T("Stop ibuprofen and other NSAIDs.", "停用布洛芬等非甾体抗炎药。"),
                               T("Stop ibuprofen and all NSAIDs.", "停用布洛芬及所有非甾体抗炎药。"))],
        fu=[(T("CBC in 1 week. Repeat EGD in 8 weeks to confirm healing.", "1周后复查血常规，8周后复查胃镜。"),
             T("CBC in 1 week; repeat EGD in 8 weeks.", "1周后复查血常规，8周后复查胃镜。"))],
        pcp_weeks=None, los=los, service=T("gastroenterology", "消化内科"), excl=("gout",),
        ret=T("black stools, vomiting blood or fainting", "再次黑便、呕血或晕厥"),
    )


def ds_afib(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    days, los = r.randint(1, 4), r.randint(2, 3)
    hr0, hr1 = r.randint(128, 164), r.randint(68, 88)
    tsh, ef, score = num(r, 0.8, 3.2, 1), r.randint(50, 62), r.randint(2, 5)
    meds = [Med(c, "metoprolol", dose="50 mg"), Med(c, "apixaban")]
    return dict(
        dx=[T("New-onset atrial fibrillation with rapid ventricular response", "新发心房颤动伴快速心室率")],
        cc=T(f"palpitations and shortness of breath for {days} days", f"心悸、气促{days}天"),
        pos=[T("fatigue", "乏力"), T("an irregular heartbeat", "心跳不规则")],
        neg=[T("chest pain", "胸痛"), T("syncope", "晕厥"), T("focal weakness", "肢体无力")],
        vit=dict(vitals(c, sbp=(118, 146)), hr=str(hr0)),
        exam=[T("irregularly irregular rhythm", "心律绝对不齐"), T("lungs clear", "双肺呼吸音清"), T("no edema", "无水肿")],
        labs=[T(f"TSH {tsh} mIU/L", f"TSH {tsh} mIU/L"), T("troponin negative x2", "肌钙蛋白2次阴性")],
        img=[T(f"ECG: atrial fibrillation, rate {hr0}", f"心电图：心房颤动，心室率{hr0}次/分"),
             T(f"Echo: LVEF {ef}%, mildly dilated left atrium", f"心脏超声：LVEF {ef}%，左房轻度扩大")],
        course_n=[T("IV diltiazem, then oral metoprolol.", "予地尔硫卓静脉注射，后改为口服美托洛尔。"),
                  T(f"Rate controlled, heart rate {hr1} at discharge. CHA2DS2-VASc score {score}; apixaban started.",
                    f"心室率控制良好，出院时心率{hr1}次/分。CHA2DS2-VASc评分{score}分，加用阿哌沙班抗凝。")],
        course_t=[T(f"Rate controlled with IV diltiazem, then oral metoprolol; heart rate {hr1} at discharge.",
                    f"予地尔硫卓后改口服美托洛尔控制心室率，出院时心率{hr1}次/分。"),
                  T(f"TSH was normal and echo showed an LVEF of {ef}%. With a CHA2DS2-VASc score of {score}, apixaban was started.",
                    f"TSH正常，心脏超声LVEF {ef}%；CHA2DS2-VASc评分{score}分，启动阿哌沙班抗凝。")],
        meds=meds, med_extra=[],
        fu=[(T("Cardiology clinic in 2 weeks; consider rhythm control.", "2周后心内科门诊复诊，评估节律控制。"),
             T("Cardiology clinic in 2 weeks to discuss rhythm control.", "2周后心内科门诊复诊，评估节律控制。"))],
        pcp_weeks=None, los=los, service=T("cardiology", "心内科"),
        ret=T("bleeding, fainting or chest pain", "出血、晕厥或胸痛"),
    )


def ds_stroke(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    s_en, s_zh = side(c)
    o_en, o_zh = ("left", "左") if s_en == "right" else ("right", "右")
    hours, los = r.randint(6, 20), r.randint(3, 5)
    n0 = r.randint(3, 7)
    n1 = r.randint(0, n0 - 1)
    ldl, a1c = r.randint(112, 176), num(r, 5.4, 6.3, 1)
    meds = [Med(c, "aspirin"), Med(c, "clopidogrel", extra=("x 21 days", "for 21 days", "共21天")),
            Med(c, "atorvastatin", dose="80 mg")]
    return dict(
        dx=[T(f"Acute ischemic stroke, {s_en} MCA territory", f"急性缺血性脑卒中（{s_zh}侧大脑中动脉供血区）")],
        cc=T(f"{o_en} arm weakness and slurred speech, last known well {hours} hours before arrival",
             f"{o_zh}上肢无力伴言语含糊，距最后正常时间{hours}小时"),
        pos=[T(f"{o_en} facial droop", f"{o_zh}侧口角歪斜")],
        neg=[T("headache", "头痛"), T("vision loss", "视力丧失"), T("seizure", "抽搐")],
        vit=vitals(c, sbp=(148, 178), dbp=(82, 98)),
        exam=[T(f"NIHSS {n0}", f"NIHSS评分{n0}分"), T(f"{o_en} arm drift", f"{o_zh}上肢轻瘫试验阳性"), T("mild dysarthria", "轻度构音障碍")],
        labs=[T(f"LDL {ldl} mg/dL", f"LDL {ldl} mg/dL"), T(f"HbA1c {a1c}%", f"糖化血红蛋白 {a1c}%")],
        img=[T("CT head: no hemorrhage", "头颅CT：未见出血"),
             T(f"MRI brain: small acute infarct in the {s_en} MCA territory", f"头颅MRI：{s_zh}侧大脑中动脉供血区小面积急性梗死"),
             T("CTA head and neck: no large vessel occlusion", "头颈部CTA：未见大血管闭塞")],
        course_n=[T("Outside the window for thrombolysis.", "已超出溶栓时间窗。"),
                  T("Started aspirin and clopidogrel, high-intensity atorvastatin. Telemetry: no atrial fibrillation.",
                    "予阿司匹林联合氯吡格雷双抗及强化阿托伐他汀治疗，心电监护未见房颤。"),
                  T(f"Weakness improved; NIHSS {n1} at discharge. Seen by PT/OT.", f"肌力好转，出院时NIHSS评分{n1}分，已行康复评估。")],
        course_t=[T("Presented outside the thrombolysis window; MRI confirmed a small acute infarct and CTA showed no large vessel occlusion.",
                    "超出溶栓时间窗，MRI证实小面积急性梗死，CTA未见大血管闭塞。"),
                  T(f"Treated with dual antiplatelet therapy and high-intensity statin; telemetry showed no atrial fibrillation. NIHSS improved from {n0} to {n1}.",
                    f"予双抗及强化他汀治疗，监护未见房颤，NIHSS由{n0}分降至{n1}分。")],
        meds=meds, med_extra=[], excl=("hld",),
        fu=[(T("Neurology clinic in 4 weeks. Outpatient physical therapy.", "4周后神经内科门诊复诊，门诊康复治疗。"),
             T("Neurology clinic in 4 weeks; outpatient physical therapy.", "4周后神经内科门诊复诊，门诊康复治疗。"))],
        pcp_weeks=None, los=los, service=T("neurology", "神经内科"),
        ret=T("new weakness, trouble speaking or facial droop (call 911)", "新发肢体无力、言语障碍或口角歪斜"),
    )


def ds_dka(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    days, los = r.randint(1, 3), r.randint(2, 4)
    glu, bicarb, gap = r.randint(380, 640), r.randint(6, 14), r.randint(22, 32)
    ph, bhb, hours = num(r, 7.08, 7.24, 2), num(r, 4.2, 8.5, 1), r.randint(10, 20)
    a1c = num(r, 9.2, 13.5, 1)
    meds = [Med(c, "glargine"), Med(c, "lispro")]
    return dict(
        dx=[T("Diabetic ketoacidosis", "糖尿病酮症酸中毒"), T("Type 1 diabetes mellitus", "1型糖尿病")],
        cc=T(f"nausea, vomiting and frequent urination for {days} days after running out of insulin",
             f"胰岛素停用后恶心、呕吐、多尿{days}天"),
        pos=[T("thirst", "口渴"), T("abdominal pain", "腹痛")],
        neg=[T("fever", "发热"), T("diarrhea", "腹泻")],
        vit=vitals(c, hr=(104, 126), sbp=(100, 122), rr=(24, 30)),
        exam=[T("dry mucous membranes", "口唇黏膜干燥"), T("Kussmaul breathing", "深大呼吸"), T("diffuse mild abdominal tenderness", "全腹轻压痛")],
        labs=[T(f"glucose {glu} mg/dL", f"血糖 {glu} mg/dL"), T(f"bicarbonate {bicarb} mmol/L", f"碳酸氢根 {bicarb} mmol/L"),
              T(f"anion gap {gap}", f"阴离子间隙 {gap}"), T(f"pH {ph}", f"pH {ph}"),
              T(f"beta-hydroxybutyrate {bhb} mmol/L", f"β-羟丁酸 {bhb} mmol/L"), T(f"HbA1c {a1c}%", f"糖化血红蛋白 {a1c}%")],
        img=[],
        course_n=[T("Admitted to the ICU; IV fluids, insulin infusion and potassium replacement.", "收入ICU，予补液、胰岛素静脉泵入及补钾治疗。"),
                  T(f"Anion gap closed after {hours} hours; transitioned to subcutaneous insulin and transferred to the floor.",
                    f"{hours}小时后阴离子间隙恢复正常，改为皮下胰岛素并转出ICU。"),
                  T("Seen by the diabetes educator.", "糖尿病教育护士已进行宣教。")],
        course_t=[T(f"Presented with glucose {glu} mg/dL, pH {ph} and an anion gap of {gap}.",
                    f"入院血糖{glu} mg/dL，pH {ph}，阴离子间隙{gap}。"),
                  T(f"Treated in the ICU with IV fluids and an insulin infusion; the gap closed after {hours} hours and {p.he(False)} moved to subcutaneous insulin.",
                    f"ICU内予补液及胰岛素泵入，{hours}小时后阴离子间隙恢复，改为皮下胰岛素。")],
        meds=meds, med_extra=[], excl=("dm2",),
        fu=[(T("Endocrinology clinic in 1 week. Check glucose before meals and at bedtime.", "1周后内分泌科门诊复诊；监测三餐前及睡前血糖。"),
             T("Endocrinology clinic in 1 week; check glucose before meals and at bedtime.", "1周后内分泌科门诊复诊，监测三餐前及睡前血糖。"))],
        pcp_weeks=None, los=los, service=T("medicine", "内分泌科"),
        ret=T("vomiting or inability to keep fluids down", "呕吐或无法进食进水"),
    )


def ds_pancreatitis(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    chole = c.chance(0.5)
    days, los = r.randint(1, 3), r.randint(5, 6) if chole else r.randint(4, 5)
    lip, alt, tbili = r.randint(900, 4800), r.randint(90, 320), num(r, 1.2, 2.8, 1)
    cbd = c.ch("4", "5", "6")
    meds = [Med(c, "acetaminophen", dose="650 mg"), Med(c, "ondansetron")]
    return dict(
        dx=[T("Acute gallstone pancreatitis", "急性胆源性胰腺炎"), T("Cholelithiasis", "胆囊结石")],
        cc=T(f"epigastric pain radiating to the back for {days} days", f"上腹痛向背部放射{days}天"),
        pos=[T("nausea and vomiting", "恶心呕吐")],
        neg=[T("alcohol use", "饮酒"), T("fever", "发热"), T("jaundice", "黄疸")],
        vit=vitals(c, hr=(94, 112)),
        exam=[T("epigastric tenderness without guarding", "上腹压痛，无肌紧张"), T("no Murphy sign", "Murphy征阴性")],
        labs=[T(f"lipase {lip} U/L", f"脂肪酶 {lip} U/L"), T(f"ALT {alt} U/L", f"ALT {alt} U/L"),
              T(f"total bilirubin {tbili} mg/dL", f"总胆红素 {tbili} mg/dL")],
        img=[T(f"RUQ ultrasound: multiple gallstones, common bile duct {cbd} mm", f"腹部超声：胆囊多发结石，胆总管{cbd} mm")],
        course_n=[T("NPO, aggressive IV fluids and IV analgesia.", "禁食，积极补液及静脉镇痛。"),
                  T("Pain resolved and diet advanced by hospital day 3.", "住院第3天腹痛缓解，逐步恢复饮食。"),
                  T(f"Laparoscopic cholecystectomy on hospital day {los - 1}, uncomplicated." if chole else
                    "Surgery consulted; interval cholecystectomy planned as an outpatient.",
                    f"住院第{los - 1}天行腹腔镜胆囊切除术，过程顺利。" if chole else "外科会诊，建议择期门诊行胆囊切除术。")],
        course_t=[T(f"Lipase was {lip} U/L and ultrasound showed gallstones. Treated with bowel rest, IV fluids and analgesia, with diet advanced by hospital day 3.",
                    f"脂肪酶{lip} U/L，超声示胆囊结石；予禁食、补液及镇痛，住院第3天恢复饮食。"),
                  T(f"Laparoscopic cholecystectomy on hospital day {los - 1} without complication." if chole else
                    "Surgery recommended an interval outpatient cholecystectomy.",
                    f"住院第{los - 1}天行腹腔镜胆囊切除术，无并发症。" if chole else "外科建议择期门诊行胆囊切除术。")],
        meds=meds, med_extra=[],
        fu=[(T("General surgery clinic in 2 weeks." if chole else "General surgery clinic in 2 weeks to schedule cholecystectomy.",
               "2周后普外科门诊复诊。" if chole else "2周后普外科门诊复诊，预约胆囊切除术。"),
             T("General surgery clinic in 2 weeks." if chole else "General surgery clinic in 2 weeks to schedule cholecystectomy.",
               "2周后普外科门诊复诊。" if chole else "2周后普外科门诊复诊，预约手术。")),
            (T("Low-fat diet.", "低脂饮食。"), T("Low-fat diet.", "低脂饮食。"))],
        pcp_weeks=None, los=los, service=T("surgery", "普外科"),
        ret=T("severe abdominal pain, fever or yellow skin", "剧烈腹痛、发热或皮肤发黄"),
    )


def ds_aki(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    days, los = r.randint(2, 5), r.randint(2, 4)
    c0 = num(r, 0.8, 1.1, 1)
    c1, c2 = num(r, 2.2, 3.6, 1), num(r, 1.1, 1.4, 1)
    k, bun = num(r, 5.0, 5.8, 1), r.randint(42, 78)
    return dict(
        dx=[T("Acute kidney injury, prerenal, from dehydration", "急性肾损伤（肾前性，脱水所致）"), T("Viral gastroenteritis", "病毒性胃肠炎")],
        cc=T(f"vomiting and diarrhea for {days} days with poor oral intake", f"呕吐、腹泻{days}天，进食进水差"),
        pos=[T("dizziness on standing", "站立时头晕"), T("decreased urine output", "尿量减少")],
        neg=[T("blood in the stool", "便血"), T("fever", "发热")],
        vit=vitals(c, hr=(98, 114), sbp=(96, 112), dbp=(56, 68)),
        exam=[T("dry mucous membranes", "口唇干燥"), T("abdomen soft and nontender", "腹软无压痛")],
        labs=[T(f"creatinine {c1} mg/dL (baseline {c0})", f"肌酐 {c1} mg/dL（基线{c0}）"), T(f"BUN {bun} mg/dL", f"尿素氮 {bun} mg/dL"),
              T(f"potassium {k} mmol/L", f"血钾 {k} mmol/L")],
        img=[T("Renal ultrasound: normal kidneys, no hydronephrosis", "肾脏超声：双肾未见异常，无肾积水")],
        course_n=[T("IV fluids; lisinopril and metformin held.", "予静脉补液，暂停赖诺普利及二甲双胍。"),
                  T(f"Vomiting and diarrhea settled. Creatinine improved to {c2} mg/dL by discharge; potassium normalized.",
                    f"呕吐腹泻好转，出院时肌酐降至{c2} mg/dL，血钾恢复正常。")],
        course_t=[T(f"Creatinine was {c1} mg/dL from a baseline of {c0}, with potassium {k} mmol/L; renal ultrasound was normal.",
                    f"肌酐{c1} mg/dL（基线{c0}），血钾{k} mmol/L，肾脏超声未见异常。"),
                  T(f"Treated with IV fluids while lisinopril and metformin were held; creatinine improved to {c2} mg/dL.",
                    f"予补液并暂停赖诺普利及二甲双胍，肌酐降至{c2} mg/dL。")],
        meds=[], med_extra=[], force=("htn", "dm2"), hold=("lisinopril", "metformin"),
        fu=[(T("BMP in 1 week.", "1周后复查肾功能及电解质。"), T("BMP in 1 week.", "1周后复查肾功能及电解质。"))],
        pcp_weeks=1, los=los, service=T("medicine", "普通内科"),
        ret=T("inability to keep fluids down or very little urine", "无法进水或尿量明显减少"),
    )


DS_CASES = [ds_pneumonia, ds_chf, ds_copd, ds_cellulitis, ds_pyelo, ds_nstemi, ds_gibleed, ds_afib, ds_stroke, ds_dka,
            ds_pancreatitis, ds_aki]


def make_discharge_summary(c: Ctx) -> tuple[str, str]:
    r, T = c.r, c.T
    case = r.choice(DS_CASES)
    lo = 18 if case is ds_dka else 35
    p = Person(c, lo=lo, hi=88 if case is not ds_dka else 45)
    k = case(c, p)
    hold = k.get("hold", ())
    com = comorbidities(c, p, r.randint(0 if k.get("force") else 1, 3), exclude=k.get("excl", ()), force=k.get("force", ()))
    home = [m for _, _, m in com if m is not None]
    h = heading_style(c)
    mstyle = c.ch("abbr", "abbr", "words")
    adm = p.visit
    dc = adm + timedelta(days=k["los"] - 1)
    attending = c.doctor()
    pmh_short = join(c, [s for _, s, _ in com]) if com else ""
    pmh_full = [f for f, _, _ in com]

    # The discharge medications: new ones, then home ones continued or held.
    new = k["meds"]
    new_keys = {m.key for m in new}
    cont = [m for m in home if m.key not in new_keys and m.key not in hold]
    held = [m for m in home if m.key in hold]
    fu_pcp = None
    if k.get("pcp_weeks"):
        w = k["pcp_weeks"]
        fu_pcp = (T(f"Follow up with PCP in {w} week{'s' if w > 1 else ''}.", f"{w}周后社区/全科门诊复诊。"),
                  T(f"Primary care in {w} week{'s' if w > 1 else ''}.", f"{w}周后全科门诊复诊。"))
    elif k.get("pcp_days"):
        d = k["pcp_days"]
        fu_pcp = (T(f"PCP visit in {d} days for a wound check.", f"{d}天后门诊复查伤口。"),
                  T(f"Primary care in {d} days to recheck the leg.", f"{d}天后门诊复查。"))
    fus = ([fu_pcp] if fu_pcp else []) + k["fu"]
    ret_n = T(f"Return precautions: {k['ret']}.", f"如出现{k['ret']}，及时返院就诊。")
    ret_t = T(f"Return for {k['ret']}.", f"如出现{k['ret']}及时就诊。")

    # ----- the note
    if c.zh:
        sexw = "男" if p.sex == "M" else "女"
        header = c.ch(
            f"{c.hospital()}\n入院记录\n姓名：{p.name}  性别：{sexw}  年龄：{p.age}岁  住院号：{p.mrn}\n入院日期：{c.date(adm)}  科室：{k['service']}",
            f"姓名：{p.name}，{sexw}，{p.age}岁，住院号{p.mrn}，联系电话：{p.phone}\n入院时间：{c.date(adm)}",
        )
        hpi = (f"{h('现病史')}患者{p.age}岁{sexw}性，" + (f"既往{pmh_short}病史，" if com else "") + f"因{k['cc']}入院。"
               + f"伴{join(c, k['pos'])}，无{join(c, k['neg'])}。")
        blocks = [(header, False), (f"{h('主诉')}{k['cc']}。", False), (hpi, False)]
        if home:
            blocks.append((f"{h('既往用药')}" + "；".join(m.s() for m in home) + "。", True))
        if k.get("social"):
            blocks.append((f"{h('个人史')}{k['social']}。", False))
        blocks.append((f"{h('过敏史')}" + c.ch("无药物过敏史", "青霉素皮试阴性，无已知药物过敏", "磺胺类过敏（皮疹）") + "。", True))
        blocks.append((f"{h('查体')}{vit_str(c, k['vit'])}。{join(c, k['exam'])}。".replace("、", "，"), False))
        aux = k["labs"] + k["img"]
        blocks.append((f"{h('辅助检查')}" + "；".join(aux) + "。", False))
        blocks.append((f"{h(c.ch('住院经过', '病程记录'))}" + "".join(k["course_n"]), False))
        dcl = [f"住院第{k['los']}天出院，一般情况好。"]
        mlines = [m.s() for m in new + cont]
        if held:
            mlines += [f"暂停{m.name}至复诊" for m in held]
        dcl.append("出院带药：" + "；".join(mlines) + "。" if mlines else "")
        dcl += [x[0][0] for x in k["med_extra"]]
        dcl += [f[0] for f in fus]
        dcl.append(ret_n)
        blocks.append((f"{h('出院情况')}" + "".join(x for x in dcl if x), False))
        blocks.append((f"主治医师：{attending}", True))
        note = assemble(c, blocks, hi=240)
    else:
        sex = "male" if p.sex == "M" else "female"
        header = c.ch(
            f"ADMISSION H&P AND HOSPITAL COURSE\nPatient: {p.name}    MRN: {p.mrn}    DOB: {p.dob()}\n"
            f"Admitted: {c.date(adm)} to the {k['service']} service (attending {attending})",
            f"{c.hospital()}\nHospitalist progress note - day of discharge ({c.date(dc)})\n"
            f"Name: {p.name} | MRN {p.mrn} | {p.age}{p.mf()}",
            f"Pt: {p.name}, MRN {p.mrn}, DOB {p.dob()}. Adm {c.date(adm)}, {k['service']}. Attending: {attending}.",
            f"Discharge planning note\n{p.name} ({p.mrn})\nAddress: {p.address}   Phone: {p.phone}\n"
            f"Admitted {c.date(adm)} - discharged {c.date(dc)}",
        )
        if c.chance(0.5):
            hpi = (f"{p.age}-year-old {c.ch(p.noun(), sex)}" + (f" with {pmh_short}" if com else "")
                   + f" who presented with {k['cc']}. {p.he()} reports {join(c, k['pos'])}. "
                   + c.ch(f"Denies {join(c, k['neg'])}.", f"No {join(c, k['neg'], 'or')}."))
        else:
            hpi = (f"{p.age}yo {p.mf()}" + (f" w/ {pmh_short}" if com else "") + f" p/w {k['cc']}. "
                   + f"+{', +'.join(k['pos'])}. " + f"No {join(c, k['neg'], 'or')}.")
        blocks = [(header, False), (f"{h(c.ch('Chief complaint', 'CC', 'Reason for admission'))} {k['cc']}.", True),
                  (f"{h(c.ch('HPI', 'History of present illness'))} {hpi}", False)]
        if home:
            blocks.append((f"{h(c.ch('Home meds', 'Outpatient medications'))} " + "; ".join(m.s(mstyle) for m in home) + ".", True))
        if k.get("social"):
            blocks.append((f"{h('Social')} {k['social']}.", False))
        blocks.append((f"{h('Allergies')} " + c.ch("NKDA", "sulfa (rash)", "codeine (nausea)", "no known drug allergies") + ".", True))
        exam = f"{vit_str(c, k['vit'], r.randrange(2))}. {cap(join(c, k['exam']))}."
        blocks.append((f"{h(c.ch('Exam', 'Physical exam', 'On admission'))} {exam}", False))
        aux = k["labs"] + k["img"]
        if c.chance(0.5) or len(aux) < 3:
            blocks.append((f"{h(c.ch('Data', 'Labs/imaging', 'Results'))} " + "; ".join(aux) + ".", False))
        else:
            blocks.append((f"{h('Labs')} " + ", ".join(k["labs"]) + ".", False))
            if k["img"]:
                blocks.append(("\n".join(sentence(c, i) for i in k["img"]), False))
        course = " ".join(k["course_n"])
        blocks.append((f"{h(c.ch('Hospital course', 'Course', 'Progress'))} {course}", False))
        when = c.ch(f"hospital day {k['los']}", f"HD{k['los']}")
        dcl = [f"Discharged home on {when}, " + c.ch("stable", "ambulating, tolerating diet", "in good condition") + "."]
        mlines = [m.s(mstyle) for m in new + cont] + [f"hold {m.name} until follow-up" for m in held]
        if c.chance(0.5):
            dcl.append("Discharge meds:\n" + "\n".join(f"- {x}" for x in mlines) if mlines else "")
        else:
            dcl.append(("Meds: " + "; ".join(mlines) + ".") if mlines else "")
        dcl += [x[0][0] for x in k["med_extra"]]
        dcl.append(" ".join(f[0] for f in fus))
        dcl.append(ret_n)
        blocks.append((f"{h(c.ch('Discharge plan', 'Disposition', 'Plan at discharge'))} " + "\n".join(x for x in dcl if x), False))
        if c.chance(0.5):
            blocks.append((f"{attending}, {c.ch('hospitalist', 'attending physician', 'MD')}", True))
        note = assemble(c, blocks, hi=235)

    # ----- the draft
    dx = k["dx"] + pmh_full
    if c.zh:
        intro = f"患者，{'男' if p.sex == 'M' else '女'}，{p.age}岁，因{k['cc']}入院。"
        course = intro + "".join(k["course_t"]) + f"住院第{k['los']}天出院。"
    else:
        intro = c.ch(f"{p.age}-year-old {p.noun()}" + (f" with {join(c, pmh_full)}" if pmh_full else "")
                     + f" admitted with {k['cc']}.",
                     f"Admitted with {k['cc']}" + (f" on a background of {join(c, pmh_full)}." if pmh_full else "."))
        course = intro + " " + " ".join(k["course_t"]) + f" Discharged home on hospital day {k['los']}."
    meds = [m.s("abbr", capital=True) for m in new + cont]
    meds += [T(f"Hold {m.name} until follow-up", f"暂停{m.name}至复诊") for m in held]
    meds += [x[1] for x in k["med_extra"]]
    fu = [f[1] for f in fus] + [ret_t]
    tgt = draft(c, "discharge_summary", [bullets([cap(d) for d in dx]), course, bullets(meds) if meds else T("None.", "无。"),
                                         bullets(fu)])
    return note, tgt


# =============================================================================================
# radiology_impression: a radiology report without its impression -> the impression.


def lobe(c: Ctx) -> tuple[str, str]:
    return c.ch(("right upper lobe", "右肺上叶"), ("right middle lobe", "右肺中叶"), ("right lower lobe", "右肺下叶"),
                ("left upper lobe", "左肺上叶"), ("left lower lobe", "左肺下叶"))


def rad_cxr(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    kind = c.ch("pneumonia", "pneumonia", "chf", "ptx", "normal", "nodule")
    s_en, s_zh = side(c)
    f = {}
    imp = []
    hist = ""
    bones = c.ch(T("No acute osseous abnormality.", "骨性胸廓未见异常。"),
                 T("Mild degenerative changes of the thoracic spine.", "胸椎轻度退行性变。"))
    heart = T("Cardiomediastinal silhouette is within normal limits.", "心影及纵隔形态、大小正常。")
    if kind == "pneumonia":
        l_en, l_zh = lobe(c)
        eff = c.chance(0.4)
        hist = T(f"Fever and cough for {r.randint(2, 9)} days.", f"发热、咳嗽{r.randint(2, 9)}天。")
        f["lungs"] = T(f"Patchy airspace opacity in the {l_en} with air bronchograms. The remaining lungs are clear.",
                       f"{l_zh}见斑片状实变影，内见支气管充气征，余肺野清晰。")
        f["pleura"] = (T(f"Small {s_en} pleural effusion. No pneumothorax.", f"{s_zh}侧少量胸腔积液，未见气胸。") if eff else
                       T("No pleural effusion or pneumothorax.", "未见胸腔积液及气胸。"))
        imp.append(T(f"{cap(l_en)} airspace opacity, consistent with pneumonia in the appropriate clinical setting.",
                     f"{l_zh}实变，考虑肺炎。"))
        if eff:
            imp.append(T(f"Small {s_en} pleural effusion.", f"{s_zh}侧少量胸腔积液。"))
    elif kind == "chf":
        ctr = c.ch("0.58", "0.60", "0.62", "0.65")
        hist = T("Shortness of breath and leg swelling.", "气促伴双下肢水肿。")
        heart = T(f"The heart is enlarged, cardiothoracic ratio {ctr}.", f"心影增大，心胸比{ctr}。")
        f["lungs"] = T("Cephalization of the pulmonary vessels, interstitial thickening and Kerley B lines. No focal consolidation.",
                       "肺血重新分布，肺间质增厚，可见Kerley B线，未见局灶性实变。")
        f["pleura"] = T("Small bilateral pleural effusions. No pneumothorax.", "双侧少量胸腔积液，未见气胸。")
        imp += [T("Cardiomegaly with interstitial pulmonary edema, consistent with congestive heart failure.",
                  "心影增大伴间质性肺水肿，符合心力衰竭表现。"),
                T("Small bilateral pleural effusions.", "双侧少量胸腔积液。")]
    elif kind == "ptx":
        cm = num(r, 1.0, 3.5, 1)
        hist = T(f"Sudden {s_en} chest pain and shortness of breath.", f"突发{s_zh}侧胸痛伴气促。")
        f["lungs"] = T("The lungs are otherwise clear.", "余肺野清晰。")
        f["pleura"] = T(f"{cap(s_en)} apical pneumothorax measuring {cm} cm from the apex. No pleural effusion.",
                        f"{s_zh}侧肺尖气胸，肺尖至胸壁距离约{cm} cm，未见胸腔积液。")
        shift = c.chance(0.2)
        heart = (T("Slight mediastinal shift to the contralateral side.", "纵隔轻度向对侧移位。") if shift else
                 T("No mediastinal shift. Heart size normal.", "纵隔无移位，心影大小正常。"))
        imp.append(T(f"{cap(s_en)} apical pneumothorax, {cm} cm at the apex.", f"{s_zh}侧气胸（肺尖处约{cm} cm）。"))
        imp.append(T("Slight mediastinal shift, concerning for developing tension physiology." if shift else
                     "No mediastinal shift.", "纵隔轻度移位，需警惕张力性气胸。" if shift else "纵隔无移位。"))
    elif kind == "nodule":
        l_en, l_zh = lobe(c)
        mm = r.randint(7, 18)
        hist = T("Chronic cough, former smoker.", "慢性咳嗽，既往吸烟。")
        f["lungs"] = T(f"A {mm} mm rounded nodular opacity projects over the {l_en}. No consolidation.",
                       f"{l_zh}见一类圆形结节影，直径约{mm} mm，未见实变。")
        f["pleura"] = T("No pleural effusion or pneumothorax.", "未见胸腔积液及气胸。")
        imp += [T(f"{mm} mm nodular opacity in the {l_en}; further evaluation with chest CT is recommended.",
                  f"{l_zh}结节影（约{mm} mm），建议胸部CT进一步检查。"),
                T("No acute cardiopulmonary process.", "心肺未见急性病变。")]
    else:
        hist = T(c.ch("Cough.", "Preoperative evaluation.", "Chest pain, rule out acute process."), c.ch("咳嗽。", "术前检查。", "胸痛。"))
        f["lungs"] = T("The lungs are clear without consolidation or edema.", "双肺野清晰，未见实变及水肿。")
        f["pleura"] = T("No pleural effusion or pneumothorax.", "未见胸腔积液及气胸。")
        imp.append(T("No acute cardiopulmonary process.", "心肺未见急性病变。"))
    f["heart"] = heart
    f["bones"] = bones
    if kind != "nodule" and c.chance(0.3):
        g_en, g_zh = lobe(c)
        f["lungs"] += T(f" Calcified granuloma in the {g_en}.", f"{g_zh}见钙化灶。")
        imp.append(T(f"Calcified granuloma in the {g_en}, a sign of old granulomatous disease.", f"{g_zh}钙化灶，陈旧性病变。"))
    labels = {"lungs": T("Lungs", "肺"), "pleura": T("Pleura", "胸膜"), "heart": T("Heart and mediastinum", "心脏及纵隔"),
              "bones": T("Bones", "骨骼")}
    exam = c.ch(T("XR CHEST PA AND LATERAL", "胸部正侧位片"), T("Chest radiograph, 2 views", "胸部X线正侧位"),
                T("CHEST X-RAY PA/LAT", "胸部DR正侧位"))
    tech = T("PA and lateral views of the chest.", "胸部后前位及侧位摄影。")
    return dict(exam=exam, hist=hist, tech=tech, findings=[(labels[k], v) for k, v in f.items()], imp=imp)


def rad_ctpe(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    pe = c.chance(0.6)
    f = []
    imp = []
    hist = c.ch(T("Pleuritic chest pain and tachycardia, elevated D-dimer.", "胸痛、心动过速，D-二聚体升高。"),
                T(f"Shortness of breath {r.randint(3, 12)} days after knee surgery.", f"膝关节术后{r.randint(3, 12)}天出现气促。"))
    if pe:
        l_en, l_zh = lobe(c)
        where = c.ch(T(f"segmental and subsegmental arteries of the {l_en}", f"{l_zh}段及亚段肺动脉"),
                     T("right and left main pulmonary arteries, extending into the lobar branches", "左右肺动脉主干并延伸至叶动脉"),
                     T(f"lobar artery of the {l_en}", f"{l_zh}叶动脉"))
        ratio = num(r, 0.7, 1.4, 1)
        strain = float(ratio) > 1.0
        f.append((T("Pulmonary arteries", "肺动脉"), T(f"Filling defects in the {where}.", f"{where}内见充盈缺损。")))
        f.append((T("Heart", "心脏"), T(f"RV/LV ratio {ratio}." + (" Straightening of the interventricular septum." if strain else ""),
                                      f"右室/左室比值{ratio}。" + ("室间隔变直。" if strain else ""))))
        imp.append(T(f"Acute pulmonary embolism in the {where}.", f"急性肺栓塞，累及{where}。"))
        imp.append(T(f"RV/LV ratio {ratio}, suggesting right heart strain." if strain else "No CT evidence of right heart strain.",
                     f"右室/左室比值{ratio}，提示右心负荷增加。" if strain else "未见右心负荷增加征象。"))
    else:
        f.append((T("Pulmonary arteries", "肺动脉"), T("Well opacified without filling defect.", "肺动脉显影良好，未见充盈缺损。")))
        f.append((T("Heart", "心脏"), T("Normal size. No pericardial effusion.", "心脏大小正常，未见心包积液。")))
        imp.append(T("No pulmonary embolism.", "未见肺栓塞。"))
    lung = []
    if c.chance(0.5):
        lung.append(T("Mild centrilobular emphysema.", "轻度小叶中心型肺气肿。"))
        if not pe:
            imp.append(T("Mild centrilobular emphysema.", "轻度小叶中心型肺气肿。"))
    if c.chance(0.5):
        n_en, n_zh = lobe(c)
        mm = r.randint(4, 9)
        lung.append(T(f"{mm} mm solid nodule in the {n_en}.", f"{n_zh}见一实性结节，大小约{mm} mm。"))
        imp.append(T(f"{mm} mm solid nodule in the {n_en}.", f"{n_zh}实性小结节（约{mm} mm）。"))
    if pe and c.chance(0.5):
        lung.append(T("Peripheral wedge-shaped opacity, possibly a small infarct.", "胸膜下楔形影，考虑小范围肺梗死。"))
        imp.insert(1, T("Peripheral wedge-shaped opacity, possibly a small pulmonary infarct.", "胸膜下楔形影，考虑肺梗死可能。"))
    if not lung:
        lung.append(T("No consolidation.", "未见实变。"))
        if not pe:
            imp.append(T("No acute pulmonary abnormality.", "肺内未见急性病变。"))
    f.append((T("Lungs", "肺"), " ".join(lung) if not c.zh else "".join(lung)))
    f.append((T("Pleura", "胸膜"), T("No effusion or pneumothorax.", "未见胸腔积液及气胸。")))
    f.append((T("Mediastinum", "纵隔"), T("No lymphadenopathy.", "未见肿大淋巴结。")))
    f.append((T("Upper abdomen", "上腹部"), T("Unremarkable.", "未见异常。")))
    vol = r.randint(60, 90)
    return dict(exam=T("CT ANGIOGRAPHY CHEST (PE PROTOCOL)", "CT肺动脉造影（CTPA）"), hist=hist,
                tech=T(f"Helical CT of the chest after {vol} mL of IV contrast, pulmonary arterial phase.",
                       f"静脉注射对比剂{vol} mL后行肺动脉期螺旋CT扫描。"), findings=f, imp=imp)


def rad_ctap(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    kind = c.ch("appendicitis", "diverticulitis", "stone", "sbo")
    s_en, s_zh = side(c)
    f = {}
    imp = []
    if kind == "appendicitis":
        mm = r.randint(10, 16)
        lith = c.chance(0.5)
        perf = c.chance(0.2)
        hist = T(f"Right lower quadrant pain for {r.randint(1, 3)} days, leukocytosis.", f"右下腹痛{r.randint(1, 3)}天，白细胞升高。")
        f["bowel"] = T(f"The appendix is dilated to {mm} mm with wall enhancement and periappendiceal fat stranding"
                       + (", with an appendicolith at its base" if lith else "") + ". "
                       + ("Small extraluminal gas locule and a 2.5 cm fluid collection adjacent to the tip." if perf else
                          "No abscess or free air."),
                       f"阑尾增粗，直径约{mm} mm，管壁强化，周围脂肪间隙模糊" + ("，根部见粪石" if lith else "") + "。"
                       + ("阑尾尖端旁见小气泡及约2.5 cm积液。" if perf else "未见脓肿及游离气体。"))
        imp.append(T(f"Acute appendicitis (appendix {mm} mm" + (" with an appendicolith)" if lith else ")") + ".",
                     f"急性阑尾炎（阑尾直径约{mm} mm" + ("，伴粪石）" if lith else "）") + "。"))
        imp.append(T("Findings suggest perforation with a 2.5 cm periappendiceal collection." if perf else
                     "No abscess or perforation.", "提示穿孔，阑尾周围约2.5 cm积液。" if perf else "未见脓肿及穿孔征象。"))
    elif kind == "diverticulitis":
        abscess = c.chance(0.3)
        cm = num(r, 2.0, 4.5, 1)
        hist = T("Left lower quadrant pain and fever.", "左下腹痛伴发热。")
        f["bowel"] = T("Sigmoid diverticula with wall thickening and pericolic fat stranding. "
                       + (f"A {cm} cm rim-enhancing fluid collection adjacent to the sigmoid colon." if abscess else
                          "No abscess or free air."),
                       "乙状结肠多发憩室，肠壁增厚，周围脂肪间隙模糊。"
                       + (f"乙状结肠旁见约{cm} cm环形强化积液。" if abscess else "未见脓肿及游离气体。"))
        imp.append(T("Acute sigmoid diverticulitis" + (f" with a {cm} cm pericolic abscess." if abscess else ", uncomplicated."),
                     "急性乙状结肠憩室炎" + (f"并结肠旁脓肿（约{cm} cm）。" if abscess else "，无并发症。")))
        if not abscess:
            imp.append(T("No abscess or free air.", "未见脓肿及游离气体。"))
    elif kind == "stone":
        mm = r.randint(3, 9)
        where_en, where_zh = c.ch(("proximal", "上段"), ("mid", "中段"), ("distal", "下段"))
        hydro_en, hydro_zh = c.ch(("mild", "轻度"), ("moderate", "中度"))
        hist = T(f"Acute {s_en} flank pain and hematuria.", f"突发{s_zh}侧腰痛伴血尿。")
        f["kidneys"] = T(f"{cap(hydro_en)} {s_en} hydronephrosis and perinephric stranding. {mm} mm calculus in the {where_en} {s_en} ureter. "
                         "The contralateral kidney is normal.",
                         f"{s_zh}肾{hydro_zh}积水，肾周脂肪间隙模糊。{s_zh}输尿管{where_zh}见一结石，大小约{mm} mm。对侧肾脏未见异常。")
        f["bowel"] = T("Normal appendix. No bowel obstruction.", "阑尾未见异常，未见肠梗阻。")
        imp.append(T(f"{mm} mm obstructing calculus in the {where_en} {s_en} ureter with {hydro_en} hydronephrosis.",
                     f"{s_zh}输尿管{where_zh}结石（约{mm} mm）并{s_zh}肾{hydro_zh}积水。"))
    else:
        hist = T("Abdominal distension, vomiting, no bowel movement for 2 days.", "腹胀、呕吐，2天未排便。")
        cm = num(r, 3.2, 4.8, 1)
        f["bowel"] = T(f"Dilated small bowel loops up to {cm} cm with a transition point in the right lower quadrant; "
                       "collapsed distal ileum and colon. No pneumatosis or free air.",
                       f"小肠扩张，最宽约{cm} cm，右下腹见移行带，远端回肠及结肠空虚。未见肠壁积气及游离气体。")
        imp.append(T("Small bowel obstruction with a transition point in the right lower quadrant, likely from adhesions.",
                     "小肠梗阻，移行带位于右下腹，考虑粘连所致。"))
        imp.append(T("No pneumatosis or free air.", "未见肠壁积气及游离气体。"))
    f.setdefault("liver", T("Normal size. No focal lesion.", "肝脏大小正常，未见占位。"))
    if c.chance(0.35):
        cyst = num(r, 1.0, 3.0, 1)
        f["liver"] = T(f"{cyst} cm simple cyst in the right hepatic lobe.", f"肝右叶见一单纯囊肿，约{cyst} cm。")
        imp.append(T(f"{cyst} cm simple hepatic cyst, benign.", f"肝囊肿（约{cyst} cm），良性。"))
    f.setdefault("kidneys", T("No hydronephrosis or stones.", "双肾未见积水及结石。"))
    f["gallbladder"] = T("Unremarkable.", "未见异常。")
    f["pancreas"] = T("Unremarkable.", "未见异常。")
    f["bladder"] = T("Unremarkable.", "膀胱未见异常。")
    f["nodes"] = T("No lymphadenopathy.", "未见肿大淋巴结。")
    if kind != "appendicitis":
        f.setdefault("bowel", T("Normal appendix.", "阑尾未见异常。"))
    labels = {"liver": T("Liver", "肝脏"), "gallbladder": T("Gallbladder", "胆囊"), "pancreas": T("Pancreas", "胰腺"),
              "kidneys": T("Kidneys and ureters", "肾脏及输尿管"), "bowel": T("Bowel", "肠道"),
              "bladder": T("Bladder", "膀胱"), "nodes": T("Lymph nodes", "淋巴结")}
    order = ["liver", "gallbladder", "pancreas", "kidneys", "bowel", "bladder", "nodes"]
    contrast = kind != "stone"
    return dict(exam=T("CT ABDOMEN AND PELVIS " + ("WITH IV CONTRAST" if contrast else "WITHOUT CONTRAST"),
                       "全腹CT" + ("增强" if contrast else "平扫")),
                hist=hist, tech=T("Axial CT images of the abdomen and pelvis" + (" after IV contrast." if contrast else " without contrast."),
                                  "腹盆腔轴位扫描" + ("，静脉注射对比剂。" if contrast else "。")),
                findings=[(labels[k], f[k]) for k in order], imp=imp)


def rad_cthead(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    kind = c.ch("normal", "sdh", "infarct")
    s_en, s_zh = side(c)
    f = []
    imp = []
    if kind == "sdh":
        mm, shift = r.randint(6, 14), r.randint(2, 6)
        hist = T("Fall on anticoagulation, headache.", "抗凝治疗中跌倒，头痛。")
        f.append((T("Extra-axial", "脑外间隙"), T(f"Crescentic hyperdense collection over the {s_en} cerebral convexity, maximal thickness {mm} mm.",
                                                  f"{s_zh}侧大脑凸面见新月形高密度影，最厚约{mm} mm。")))
        f.append((T("Midline", "中线"), T(f"{shift} mm of leftward midline shift." if s_en == "right" else f"{shift} mm of rightward midline shift.",
                                          f"中线结构向对侧移位约{shift} mm。")))
        imp.append(T(f"Acute {s_en} subdural hematoma, {mm} mm thick, with {shift} mm midline shift.",
                     f"{s_zh}侧急性硬膜下血肿（厚约{mm} mm），中线移位约{shift} mm。"))
        imp.append(T("No skull fracture.", "未见颅骨骨折。"))
        f.append((T("Bones", "颅骨"), T("No skull fracture.", "未见骨折。")))
    elif kind == "infarct":
        hist = T(f"Acute {('left' if s_en == 'right' else 'right')} sided weakness.", f"急性{'左' if s_zh == '右' else '右'}侧肢体无力。")
        f.append((T("Brain parenchyma", "脑实质"), T(f"Loss of gray-white differentiation in the {s_en} insula and frontal operculum. No hemorrhage.",
                                                     f"{s_zh}侧岛叶及额盖区灰白质分界不清，未见出血。")))
        f.append((T("Vessels", "血管"), T(f"Hyperdense {s_en} middle cerebral artery.", f"{s_zh}侧大脑中动脉高密度征。")))
        imp.append(T(f"Early acute {s_en} MCA territory infarct with a hyperdense {s_en} MCA sign.",
                     f"{s_zh}侧大脑中动脉供血区早期急性梗死，伴大脑中动脉高密度征。"))
        imp.append(T("No intracranial hemorrhage.", "未见颅内出血。"))
        f.append((T("Bones", "颅骨"), T("Intact.", "未见异常。")))
    else:
        hist = T(c.ch("Headache.", "Fall, head strike, no loss of consciousness.", "Dizziness."), c.ch("头痛。", "跌倒后头部外伤。", "头晕。"))
        deg_en, deg_zh = c.ch(("Mild", "轻度"), ("Moderate", "中度"), ("", ""))
        atrophy = c.chance(0.4)
        f.append((T("Brain parenchyma", "脑实质"), T((f"{deg_en} periventricular white matter hypodensity. " if deg_en else "Normal gray-white differentiation. ")
                                                     + "No hemorrhage, mass or acute infarct.",
                                                     (f"侧脑室旁白质{deg_zh}低密度，" if deg_zh else "灰白质分界清楚，") + "未见出血、占位及急性梗死。")))
        f.append((T("Ventricles", "脑室"), T("Mild generalized volume loss with proportional ventricular prominence." if atrophy else "Normal size for age.",
                                           "脑沟、脑室轻度增宽。" if atrophy else "脑室大小与年龄相符。")))
        fx = c.chance(0.25)
        hema = T(f"{r.randint(2, 4)} cm left frontal scalp hematoma.", f"左额部头皮血肿，约{r.randint(2, 4)} cm。") if fx else ""
        f.append((T("Bones and soft tissues", "颅骨及软组织"), (T("No fracture. ", "未见骨折。") + hema).strip()))
        imp.append(T("No acute intracranial abnormality.", "颅内未见急性病变。"))
        if deg_en:
            imp.append(T(f"{deg_en} chronic small vessel ischemic change.", f"{deg_zh}脑小血管病。"))
        if atrophy:
            imp.append(T("Mild age-related volume loss.", "轻度脑萎缩。"))
        if fx:
            imp.append(T("Left frontal scalp hematoma without fracture.", "左额部头皮血肿，无骨折。"))
    f.append((T("Sinuses and mastoids", "鼻窦及乳突"), T("Clear.", "气化良好。")))
    return dict(exam=T("CT HEAD WITHOUT CONTRAST", "头颅CT平扫"), hist=hist,
                tech=T("Axial CT images of the head without contrast.", "头颅轴位平扫。"), findings=f, imp=imp)


def rad_ruq(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    kind = c.ch("cholecystitis", "cholelithiasis", "steatosis")
    wall = num(r, 4.5, 7.5, 1) if kind == "cholecystitis" else num(r, 1.8, 2.8, 1)
    cbd = c.ch("3", "4", "5")
    stone = num(r, 0.8, 2.4, 1)
    f = []
    imp = []
    hist = T("Right upper quadrant pain after meals." if kind != "steatosis" else "Elevated liver enzymes.",
             "餐后右上腹痛。" if kind != "steatosis" else "肝酶升高。")
    liver = (T("Diffusely increased echogenicity. No focal lesion.", "肝实质回声弥漫性增强，未见占位。") if kind == "steatosis" or c.chance(0.3)
             else T("Normal echogenicity. No focal lesion.", "肝实质回声均匀，未见占位。"))
    f.append((T("Liver", "肝脏"), liver))
    if kind == "cholecystitis":
        gb = T(f"Multiple gallstones, the largest {stone} cm, one impacted in the neck. Wall thickened to {wall} mm with pericholecystic fluid. Positive sonographic Murphy sign.",
               f"胆囊内见多发结石，最大约{stone} cm，一枚嵌顿于胆囊颈部；胆囊壁增厚约{wall} mm，周围见积液，超声Murphy征阳性。")
        imp.append(T(f"Acute calculous cholecystitis: gallstones with wall thickening to {wall} mm, pericholecystic fluid and a positive sonographic Murphy sign.",
                     f"急性结石性胆囊炎（胆囊壁增厚约{wall} mm，胆囊周围积液，Murphy征阳性）。"))
    elif kind == "cholelithiasis":
        gb = T(f"Mobile gallstones, the largest {stone} cm. Wall {wall} mm. No pericholecystic fluid. Negative sonographic Murphy sign.",
               f"胆囊内见可移动结石，最大约{stone} cm，胆囊壁厚{wall} mm，未见胆囊周围积液，Murphy征阴性。")
        imp.append(T("Cholelithiasis without sonographic evidence of acute cholecystitis.", "胆囊结石，未见急性胆囊炎征象。"))
    else:
        gb = T(f"No stones. Wall {wall} mm.", f"胆囊未见结石，壁厚{wall} mm。")
    f.append((T("Gallbladder", "胆囊"), gb))
    f.append((T("Bile ducts", "胆管"), T(f"Common bile duct {cbd} mm. No intrahepatic ductal dilatation.", f"胆总管内径{cbd} mm，肝内胆管未见扩张。")))
    f.append((T("Pancreas", "胰腺"), T("Visualized portions unremarkable.", "显示部分未见异常。")))
    f.append((T("Right kidney", "右肾"), T("No hydronephrosis.", "未见积水。")))
    if "increased" in liver or "增强" in liver:
        imp.append(T("Hepatic steatosis.", "脂肪肝。"))
    imp.append(T(f"No biliary dilatation (common bile duct {cbd} mm).", f"胆管未见扩张（胆总管{cbd} mm）。"))
    return dict(exam=T("US ABDOMEN LIMITED (RIGHT UPPER QUADRANT)", "腹部超声（肝胆胰）"), hist=hist,
                tech=T("Grayscale and color Doppler images of the right upper quadrant.", "右上腹灰阶及彩色多普勒超声检查。"),
                findings=f, imp=imp)


def rad_dvt(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    s_en, s_zh = side(c)
    dvt = c.chance(0.55)
    f, imp = [], []
    hist = T(f"{cap(s_en)} calf swelling and pain.", f"{s_zh}小腿肿痛。")
    if dvt:
        seg_en, seg_zh = c.ch(("common femoral, femoral and popliteal veins", "股总静脉、股静脉及腘静脉"),
                              ("popliteal vein and posterior tibial veins", "腘静脉及胫后静脉"), ("femoral and popliteal veins", "股静脉及腘静脉"))
        f.append((T("Deep veins", "深静脉"), T(f"Echogenic thrombus distends the {s_en} {seg_en}, which are noncompressible with absent flow.",
                                             f"{s_zh}侧{seg_zh}管腔内见低回声充填，探头加压不能压闭，未见血流信号。")))
        imp.append(T(f"Acute occlusive deep vein thrombosis of the {s_en} {seg_en}.", f"{s_zh}下肢{seg_zh}急性闭塞性深静脉血栓形成。"))
    else:
        f.append((T("Deep veins", "深静脉"), T(f"The {s_en} common femoral, femoral and popliteal veins are compressible with normal flow and augmentation.",
                                             f"{s_zh}侧股总静脉、股静脉及腘静脉加压可完全压闭，血流通畅。")))
        imp.append(T(f"No deep vein thrombosis in the {s_en} lower extremity.", f"{s_zh}下肢未见深静脉血栓。"))
    if c.chance(0.4):
        cm = num(r, 2.0, 5.5, 1)
        f.append((T("Popliteal fossa", "腘窝"), T(f"{cm} cm Baker cyst.", f"见一囊性包块，约{cm} cm，考虑腘窝囊肿。")))
        imp.append(T(f"{cm} cm {s_en} Baker cyst.", f"{s_zh}腘窝囊肿（约{cm} cm）。"))
    f.append((T("Contralateral common femoral vein", "对侧股总静脉"), T("Patent.", "血流通畅。")))
    return dict(exam=T(f"US VENOUS DUPLEX {s_en.upper()} LOWER EXTREMITY", f"{s_zh}下肢静脉彩超"), hist=hist,
                tech=T("Grayscale, compression and Doppler imaging.", "灰阶、加压及多普勒超声检查。"), findings=f, imp=imp)


def rad_lspine(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    s_en, s_zh = side(c)
    lvl = c.ch("L4-L5", "L5-S1")
    other = "L5-S1" if lvl == "L4-L5" else "L4-L5"
    root = "L5" if lvl == "L4-L5" else "S1"
    mm = r.randint(4, 9)
    hist = T(f"Low back pain radiating down the {s_en} leg for {r.randint(3, 12)} weeks.", f"腰痛伴{s_zh}下肢放射痛{r.randint(3, 12)}周。")
    f = [(T("Alignment", "序列"), T("Normal lumbar lordosis. No listhesis.", "腰椎生理曲度存在，未见滑脱。")),
         (T("Conus", "圆锥"), T("Terminates at L1, normal signal.", "圆锥止于L1水平，信号正常。")),
         (lvl, T(f"{cap(s_en)} paracentral disc extrusion extending {mm} mm, compressing the traversing {s_en} {root} nerve root. Mild {s_en} foraminal narrowing.",
                 f"椎间盘向{s_zh}后方突出约{mm} mm，压迫{s_zh}侧{root}神经根，{s_zh}侧椎间孔轻度狭窄。")),
         (other, T("Mild disc bulge without stenosis.", "椎间盘轻度膨出，未见椎管狭窄。")),
         (T("Other levels", "其余节段"), T("No significant stenosis.", "未见明显狭窄。"))]
    imp = [T(f"{lvl} {s_en} paracentral disc extrusion compressing the {s_en} {root} nerve root.",
             f"{lvl}椎间盘{s_zh}后方突出，压迫{s_zh}侧{root}神经根。"),
           T(f"Mild {other} disc bulge without stenosis.", f"{other}椎间盘轻度膨出，无椎管狭窄。")]
    return dict(exam=T("MRI LUMBAR SPINE WITHOUT CONTRAST", "腰椎MRI平扫"), hist=hist,
                tech=T("Sagittal and axial T1 and T2 weighted images.", "矢状位及轴位T1WI、T2WI扫描。"), findings=f, imp=imp)


RAD_STUDIES = [rad_cxr, rad_cxr, rad_ctpe, rad_ctap, rad_ctap, rad_cthead, rad_ruq, rad_dvt, rad_lspine]


def make_radiology_impression(c: Ctx) -> tuple[str, str]:
    r, T = c.r, c.T
    p = Person(c, lo=20, hi=88)
    s = r.choice(RAD_STUDIES)(c, p)
    when = p.visit
    comp = c.ch(T("None.", "无。"), T(f"Prior study from {c.date(when - timedelta(days=r.randint(60, 900)))}.",
                                     f"与{c.date(when - timedelta(days=r.randint(60, 900)))}旧片比较。"),
                T("None available.", "无旧片。"))
    ref = c.doctor()
    if c.zh:
        sexw = "男" if p.sex == "M" else "女"
        head = c.ch(f"{c.hospital()}放射科\n影像检查报告\n姓名：{p.name}  性别：{sexw}  年龄：{p.age}岁  影像号：{c.accession()}\n"
                    f"住院号：{p.mrn}  检查日期：{c.date(when)}  申请医师：{ref}",
                    f"姓名：{p.name}，{sexw}，{p.age}岁，门诊号{p.mrn}，检查时间{c.date(when)}")
        find = "\n".join(f"{k}：{v}" for k, v in s["findings"]) if c.chance(0.5) else "；".join(f"{k}：{v.rstrip('。')}" for k, v in s["findings"]) + "。"
        blocks = [(head, False), (f"检查项目：{s['exam']}", False), (f"临床诊断：{s['hist']}", False),
                  (f"检查方法：{s['tech']}", True), (f"对比：{comp}", True), (f"检查所见：\n{find}", False)]
        if c.chance(0.5):
            blocks.append((f"报告医师：{c.doctor(False)}  审核医师：{c.doctor(False)}", True))
        note = assemble(c, blocks)
    else:
        upper = c.chance(0.6)
        h = (lambda x: x.upper() + ":") if upper else (lambda x: x + ":")
        head = c.ch(f"{h('Exam')} {s['exam']}\n{h('Date')} {c.date(when)}    {h('Accession')} {c.accession()}\n"
                    f"{h('Patient')} {p.name}    {h('MRN')} {p.mrn}    {h('DOB')} {p.dob()}\n{h('Ordering physician')} {ref}",
                    f"{p.name} | MRN {p.mrn} | {p.age} y/o {('male' if p.sex == 'M' else 'female')}\n{s['exam']} - {c.date(when)}\n"
                    f"Ordered by {ref}",
                    f"{c.hospital()} - Department of Radiology\n{s['exam']}\n{h('Patient')} {p.name} ({p.mrn}), DOB {p.dob()}\n"
                    f"{h('Exam date')} {c.date(when)}")
        if c.chance(0.55):
            find = "\n".join(f"{k}: {v}" for k, v in s["findings"])
        else:
            find = " ".join(f"{k}: {v}" for k, v in s["findings"])
        blocks = [(head, False), (f"{h(c.ch('Clinical history', 'Indication', 'History'))} {s['hist']}", False),
                  (f"{h('Technique')} {s['tech']}", True), (f"{h('Comparison')} {comp}", True),
                  (f"{h('Findings')}\n{find}", False)]
        if c.chance(0.4):
            blocks.append((f"Dictated by {c.doctor()}, {c.ch('radiologist', 'MD', 'attending radiologist')}.", True))
        note = assemble(c, blocks)
    imp = s["imp"]
    tgt = draft(c, "radiology_impression", ["\n".join(f"{i}. {x}" for i, x in enumerate(imp, 1))])
    return note, tgt


# =============================================================================================
# soap_note: a doctor-patient dialogue (or a short visit note) -> SOAP note.


def soap_sinusitis(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    d = r.randint(10, 16)
    abx = Med(c, "amox_clav", extra=course_of(c, c.ch(5, 7)))
    return dict(
        reason=T(f"I've had a stuffy nose and pressure in my face for about {d} days and it's not getting better.",
                 f"我鼻塞、脸上发胀已经{d}天了，一直没好。"),
        qa=[(T("Is the mucus colored?", "鼻涕是什么颜色？"), T("Yes, thick and yellow. And it hurts more when I bend over.", "黄色的，很稠，弯腰的时候更疼。")),
            (T("Any tooth pain?", "牙疼吗？"), T("A little in my upper teeth on the right.", "右边上面的牙有点疼。"))],
        neg=[T("fever", "发热"), T("vision changes", "视物异常"), T("neck stiffness", "颈部僵硬")],
        subj=T(f"{d} days of nasal congestion, facial pressure worse on bending forward, thick yellow nasal discharge and right upper tooth pain",
               f"鼻塞、面部胀痛{d}天，弯腰加重，伴黄稠涕及右上牙痛"),
        vit=vitals(c), exam=[(T("Your right cheek is tender when I press, and your nasal lining is swollen with yellow discharge.",
                                "按右边脸颊有压痛，鼻黏膜肿胀，有黄色分泌物。"),
                              T("right maxillary sinus tenderness, swollen nasal mucosa with purulent discharge", "右上颌窦区压痛，鼻黏膜肿胀，见脓性分泌物")),
                             (T("Your throat and ears look normal.", "咽部和耳朵都正常。"), T("normal pharynx and tympanic membranes", "咽部及鼓膜未见异常"))],
        tests=[],
        dx=T(f"Acute bacterial sinusitis, symptoms for {d} days without improvement.", f"急性细菌性鼻窦炎（症状持续{d}天无好转）。"),
        dx_say=T("Since it has gone on this long, this looks like a bacterial sinus infection.", "症状持续这么久，考虑是细菌性鼻窦炎。"),
        plan=[(T(f"I'll prescribe {abx.s('words')}.", f"给您开{abx.s()}。"), abx.s("abbr", True)),
              (T("Use saline rinses twice a day.", "每天用生理盐水洗鼻2次。"), T("Saline nasal irrigation twice a day.", "生理盐水洗鼻，每日2次。")),
              (T("Come back if you get a fever, swelling around the eye or a bad headache.", "如果发热、眼周肿胀或剧烈头痛，请及时复诊。"),
               T("Return for fever, periorbital swelling or severe headache.", "如发热、眶周肿胀或剧烈头痛及时复诊。"))],
    )


def soap_strep(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    d = r.randint(1, 4)
    v = vitals(c, t=(38.1, 39.2), hr=(88, 108))
    amx = Med(c, "amoxicillin", dose="500 mg", freq="bid", extra=course_of(c, 10))
    return dict(
        reason=T(f"My throat has been killing me for {d} days and I have a fever.", f"嗓子疼了{d}天，还发烧。"),
        qa=[(T("Does it hurt to swallow?", "吞咽疼吗？"), T("Yes, a lot.", "很疼。"))],
        neg=[T("cough", "咳嗽"), T("runny nose", "流涕")],
        subj=T(f"{d} days of sore throat with painful swallowing and fever", f"咽痛{d}天，伴吞咽痛及发热"),
        vit=v,
        exam=[(T("Your tonsils are swollen with white patches, and the glands in the front of your neck are tender.",
                 "扁桃体肿大，上面有白色渗出物，颈前淋巴结有压痛。"),
               T("tonsillar swelling with exudate, tender anterior cervical lymph nodes", "扁桃体肿大伴脓性渗出，颈前淋巴结压痛"))],
        tests=[(T("The rapid strep test came back positive.", "快速链球菌检测是阳性。"), T("Rapid strep test positive.", "快速链球菌抗原检测阳性。"))],
        dx=T("Streptococcal pharyngitis.", "链球菌性咽炎。"),
        dx_say=T("This is strep throat.", "这是链球菌性咽炎。"),
        plan=[(T(f"Take {amx.s('words')}.", f"{amx.s()}。"), amx.s("abbr", True)),
              (T("You can use acetaminophen for the pain and fever.", "疼痛发热可以用对乙酰氨基酚。"),
               T("Acetaminophen as needed for pain and fever.", "对乙酰氨基酚对症退热止痛。")),
              (T("Stay home until you've had the antibiotic for 24 hours.", "用抗生素满24小时前先别去上班上学。"),
               T("Stay home until 24 hours of antibiotics.", "抗生素治疗满24小时前居家休息。"))],
    )


def soap_htn(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    old = c.ch("10 mg", "20 mg")
    new = "20 mg" if old == "10 mg" else "40 mg"
    hs, hd = r.randint(146, 162), r.randint(88, 98)
    v = vitals(c, sbp=(146, 164), dbp=(88, 100))
    weeks = c.ch(2, 4)
    return dict(
        reason=T("I'm here for my blood pressure check.", "我来复查血压。"),
        qa=[(T("How have your home readings been?", "在家量的血压怎么样？"),
             T(f"Mostly around {hs} over {hd}.", f"大多在{hs}/{hd}左右。")),
            (T("Are you taking the lisinopril every day?", "赖诺普利每天都吃吗？"),
             T(f"Yes, {old} every morning.", f"吃，每天早上{old}。"))],
        neg=[T("headaches", "头痛"), T("chest pain", "胸痛"), T("shortness of breath", "气短")],
        subj=T(f"hypertension follow-up; home readings around {hs}/{hd} on lisinopril {old} daily, taking it every day",
               f"高血压复诊，规律服用赖诺普利{old}每日1次，家庭血压约{hs}/{hd}"),
        vit=v,
        exam=[(T("Heart and lungs sound normal, and there's no swelling in your legs.", "心肺听诊正常，双腿不肿。"),
               T("regular rhythm, lungs clear, no edema", "心律齐，双肺呼吸音清，无水肿"))],
        tests=[],
        dx=T("Hypertension, not at goal on lisinopril.", "高血压，赖诺普利治疗下血压未达标。"),
        dx_say=T("Your blood pressure is still above goal.", "血压还是没有达标。"),
        plan=[(T(f"Let's increase the lisinopril to {new} once a day.", f"赖诺普利加到{new}，每天1次。"),
               T(f"Increase lisinopril to {new} daily.", f"赖诺普利加量至{new} 每日1次。")),
              (T("We'll check your kidney function and potassium in 1 week.", "1周后查一下肾功能和血钾。"),
               T("BMP in 1 week.", "1周后复查肾功能及血钾。")),
              (T("Cut back on salt, and keep logging your readings.", "少吃盐，继续记录血压。"),
               T("Low-salt diet; continue home blood pressure log.", "低盐饮食，继续记录家庭血压。")),
              (T(f"See you back in {weeks} weeks.", f"{weeks}周后复诊。"), T(f"Follow up in {weeks} weeks.", f"{weeks}周后复诊。"))],
    )


def soap_dm(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    a1c, prev = num(r, 7.8, 9.6, 1), num(r, 6.9, 7.6, 1)
    fasting = r.randint(150, 210)
    return dict(
        reason=T("I came for my type 2 diabetes follow-up and to go over my labs.", "我来复查2型糖尿病，看看化验结果。"),
        qa=[(T("How are your sugars at home?", "在家测的血糖怎么样？"), T(f"Fasting is usually around {fasting}.", f"空腹一般在{fasting}左右。")),
            (T("And the metformin?", "二甲双胍呢？"), T("500 mg twice a day, no stomach problems.", "每天2次，每次500 mg，胃没什么不舒服。"))],
        neg=[T("low blood sugar episodes", "低血糖发作"), T("numbness in the feet", "足部麻木"), T("blurred vision", "视物模糊")],
        subj=T(f"type 2 diabetes follow-up; fasting glucose around {fasting} at home on metformin 500 mg twice daily, tolerating it",
               f"2型糖尿病复诊，服用二甲双胍500 mg 每日2次，耐受好，家中空腹血糖约{fasting}"),
        vit=vitals(c, sbp=(118, 136)),
        exam=[(T("Your feet look good: pulses are normal and you can feel the monofilament everywhere.", "双足检查正常，足背动脉搏动好，单丝感觉正常。"),
               T("normal foot exam with intact pulses and monofilament sensation", "足部检查正常，足背动脉搏动良好，单丝觉正常"))],
        tests=[(T(f"Your A1c is {a1c}%, up from {prev}% last time.", f"糖化血红蛋白{a1c}%，上次是{prev}%。"),
                T(f"HbA1c {a1c}% (previously {prev}%).", f"糖化血红蛋白{a1c}%（上次{prev}%）。"))],
        dx=T(f"Type 2 diabetes, above goal with HbA1c {a1c}%.", f"2型糖尿病，血糖控制未达标（糖化血红蛋白{a1c}%）。"),
        dx_say=T("Your diabetes control has slipped.", "血糖控制变差了。"),
        plan=[(T("Let's go up on the metformin to 1000 mg twice a day.", "二甲双胍加到每次1000 mg，每天2次。"),
               T("Increase metformin to 1000 mg twice daily.", "二甲双胍加量至1000 mg 每日2次。")),
              (T("I'll refer you for an eye exam and to the diabetes educator.", "给您转眼科查眼底，再约个糖尿病教育。"),
               T("Referral for a diabetic eye exam and diabetes education.", "转眼科查眼底，糖尿病教育。")),
              (T("We'll repeat the A1c in 3 months.", "3个月后复查糖化血红蛋白。"), T("Repeat HbA1c in 3 months.", "3个月后复查糖化血红蛋白。"))],
    )


def soap_backpain(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    d = r.randint(2, 10)
    nap, cyc = Med(c, "naproxen"), Med(c, "cyclobenzaprine", dose="5 mg")
    return dict(
        reason=T(f"I hurt my lower back lifting boxes {d} days ago.", f"{d}天前搬箱子把腰扭了。"),
        qa=[(T("Does the pain go down your legs?", "疼痛往腿上放射吗？"), T("No, it stays in my lower back. It's worse when I bend.", "不放射，就在腰上，弯腰更疼。"))],
        neg=[T("numbness or tingling", "麻木"), T("leg weakness", "下肢无力"), T("bladder or bowel problems", "大小便异常"), T("fever", "发热")],
        subj=T(f"low back pain for {d} days after lifting boxes, worse with bending, not radiating", f"搬重物后腰痛{d}天，弯腰加重，无放射痛"),
        vit=vitals(c),
        exam=[(T("You're tender over the muscles on both sides of the lower back; the straight leg raise is negative and your strength and reflexes are normal.",
                 "腰部两侧肌肉有压痛，直腿抬高试验阴性，肌力和反射都正常。"),
               T("bilateral lumbar paraspinal tenderness. Straight leg raise negative bilaterally, with normal strength and reflexes",
                 "双侧腰椎旁肌压痛，直腿抬高试验阴性，肌力及反射正常"))],
        tests=[],
        dx=T("Acute mechanical low back strain without red flags.", "急性腰肌劳损，无危险信号。"),
        dx_say=T("This is a muscle strain; nothing suggests a nerve problem.", "这是腰肌拉伤，没有神经受压的表现。"),
        plan=[(T(f"Take {nap.s('words')} with food, and {cyc.s('words')} if the spasms keep you up.", f"{nap.s()}，饭后服；肌肉痉挛影响睡眠时{cyc.s()}。"),
               nap.s("abbr", True) + T(" with food", "，饭后服")),
              (T("", ""), cyc.s("abbr", True)),
              (T("Keep moving, avoid heavy lifting, and I'll send a referral to physical therapy.", "保持活动，避免提重物，给您转康复科。"),
               T("Stay active, avoid heavy lifting; physical therapy referral.", "保持活动，避免提重物，转康复治疗。")),
              (T("Come back right away if you have numbness or trouble with your bladder.", "如果出现麻木或大小便问题，马上来医院。"),
               T("Return for numbness, weakness or bladder changes.", "如出现麻木、无力或大小便异常立即就诊。"))],
    )


def soap_uti(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    d = r.randint(1, 4)
    nit = Med(c, "nitrofurantoin", extra=course_of(c, 5))
    return dict(
        reason=T(f"It burns when I pee and I keep having to go. It started {d} days ago.", f"{d}天前开始小便时烧灼痛，总想上厕所。"),
        qa=[(T("Any blood in the urine?", "尿里有血吗？"), T("I don't think so.", "好像没有。"))],
        neg=[T("fever", "发热"), T("back or flank pain", "腰痛"), T("vaginal discharge", "阴道分泌物异常")],
        subj=T(f"{d} days of dysuria and urinary frequency", f"尿痛、尿频{d}天"),
        vit=vitals(c),
        exam=[(T("There's mild tenderness above the pubic bone and no tenderness over your kidneys.", "耻骨上方有轻压痛，肾区没有叩痛。"),
               T("mild suprapubic tenderness, no costovertebral angle tenderness", "耻骨上轻压痛，肾区无叩痛"))],
        tests=[(T("Your urine dip shows leukocytes and nitrites.", "尿检白细胞和亚硝酸盐阳性。"),
                T("Urine dipstick positive for leukocyte esterase and nitrite.", "尿试纸白细胞酯酶及亚硝酸盐阳性。"))],
        dx=T("Acute uncomplicated cystitis.", "急性单纯性膀胱炎。"),
        dx_say=T("You have a bladder infection.", "这是膀胱炎。"),
        plan=[(T(f"I'm sending {nit.s('words')} to your pharmacy.", f"给您开{nit.s()}。"), nit.s("abbr", True)),
              (T("Drink plenty of fluids.", "多喝水。"), T("Increase fluid intake.", "多饮水。")),
              (T("Call if you get a fever or back pain.", "如果发热或腰痛请联系我们。"), T("Return for fever or flank pain.", "如发热或腰痛及时复诊。"))],
    )


def soap_migraine(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    n = r.randint(3, 6)
    hours = r.randint(6, 24)
    sum_ = Med(c, "sumatriptan")
    return dict(
        reason=T(f"I've been getting bad headaches, about {n} a month now.", f"最近经常头疼，一个月大概{n}次。"),
        qa=[(T("What are they like?", "是什么样的头疼？"),
             T(f"Throbbing on one side, I feel sick and light bothers me. They last about {hours} hours.", f"一侧跳着疼，恶心，怕光，每次大概{hours}小时。")),
            (T("What have you tried?", "吃过什么药？"), T("Ibuprofen, it only helps a little.", "布洛芬，效果一般。"))],
        neg=[T("weakness", "肢体无力"), T("vision loss", "视力丧失"), T("fever", "发热")],
        subj=T(f"about {n} headaches a month, throbbing and one-sided, lasting about {hours} hours with nausea and light sensitivity; ibuprofen helps only a little",
               f"每月头痛约{n}次，单侧搏动性，每次约{hours}小时，伴恶心、畏光，布洛芬效果欠佳"),
        vit=vitals(c),
        exam=[(T("Your neurological exam is completely normal, including the back of your eyes.", "神经系统检查完全正常，眼底也正常。"),
               T("normal neurological exam including fundi", "神经系统查体正常，眼底正常"))],
        tests=[],
        dx=T("Migraine without aura.", "无先兆偏头痛。"),
        dx_say=T("These sound like migraines.", "这是偏头痛。"),
        plan=[(T(f"Try {sum_.s('words')}.", f"头痛时{sum_.s()}。"), sum_.s("abbr", True)),
              (T("Keep a headache diary and watch for triggers like poor sleep.", "记头痛日记，注意睡眠等诱因。"),
               T("Headache diary; avoid triggers.", "记录头痛日记，避免诱因。")),
              (T("Let's meet again in 6 weeks.", "6周后复诊。"), T("Follow up in 6 weeks.", "6周后复诊。"))],
    )


def soap_ankle(c: Ctx, p: Person) -> dict:
    T = c.T
    s_en, s_zh = side(c)
    ibu = Med(c, "ibuprofen", dose="400 mg", freq="tid")
    return dict(
        reason=T(f"I rolled my {s_en} ankle playing basketball yesterday.", f"昨天打篮球把{s_zh}脚踝崴了。"),
        qa=[(T("Could you walk on it afterwards?", "崴了以后还能走吗？"), T("Yes, but it hurts and it's swollen.", "能走，但是疼，还肿了。"))],
        neg=[T("numbness", "麻木"), T("prior injury to that ankle", "该踝关节既往受伤史")],
        subj=T(f"inversion injury of the {s_en} ankle playing basketball yesterday with pain and swelling; able to bear weight",
               f"昨日打篮球时{s_zh}踝内翻扭伤，疼痛肿胀，可负重行走"),
        vit=vitals(c),
        exam=[(T("There's swelling and tenderness over the outside ligaments, but no tenderness over the bones.", "外侧韧带处肿胀压痛，骨头没有压痛。"),
               T(f"swelling and tenderness over the {s_en} lateral ankle ligaments, no bony tenderness", f"{s_zh}踝外侧韧带处肿胀压痛，无骨性压痛")),
              (T("Circulation and sensation in your foot are normal.", "足部血运和感觉正常。"), T("neurovascularly intact", "足部血运及感觉正常"))],
        tests=[(T("The X-ray shows no fracture.", "X光片没有骨折。"), T("Ankle X-ray: no fracture.", "踝关节X线：未见骨折。"))],
        dx=T(f"{cap(s_en)} lateral ankle sprain.", f"{s_zh}踝外侧韧带扭伤。"),
        dx_say=T("It's a sprain.", "是扭伤。"),
        plan=[(T("Rest, ice, compression and elevation, and wear the brace.", "休息、冰敷、加压包扎、抬高，戴护踝。"),
               T("Rest, ice, compression, elevation; ankle brace.", "休息、冰敷、加压、抬高患肢，佩戴护踝。")),
              (T(f"Take {ibu.s('words')} with food.", f"{ibu.s()}，饭后服。"), ibu.s("abbr", True) + T(" with food", "，饭后服")),
              (T("Follow up in 2 weeks if it's not better.", "2周后不好转再来复查。"), T("Follow up in 2 weeks if not improving.", "2周后如无好转复诊。"))],
    )


def soap_gerd(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    m = r.randint(2, 6)
    ome = Med(c, "omeprazole", dose="20 mg", extra=("x 8 weeks", "for 8 weeks", "共8周"))
    return dict(
        reason=T(f"I've had heartburn after meals for about {m} months.", f"饭后烧心大概{m}个月了。"),
        qa=[(T("Is it worse at night?", "晚上会加重吗？"), T("Yes, when I lie down after dinner. I get a sour taste too.", "会，吃完晚饭躺下就加重，嘴里还发酸。"))],
        neg=[T("trouble swallowing", "吞咽困难"), T("weight loss", "体重下降"), T("black stools", "黑便"), T("vomiting", "呕吐")],
        subj=T(f"{m} months of heartburn after meals and at night when lying down, with sour regurgitation",
               f"餐后及夜间平卧时烧心{m}个月，伴反酸"),
        vit=vitals(c),
        exam=[(T("Your belly is soft and not tender.", "腹部软，没有压痛。"), T("abdomen soft and nontender", "腹软，无压痛"))],
        tests=[],
        dx=T("Gastroesophageal reflux disease without alarm features.", "胃食管反流病，无报警症状。"),
        dx_say=T("This is acid reflux.", "这是胃食管反流。"),
        plan=[(T(f"Take {ome.s('words')}, before breakfast.", f"{ome.s()}，早餐前服。"), ome.s("abbr", True) + T(", before breakfast", "，早餐前服")),
              (T("Avoid eating within 3 hours of bedtime and raise the head of your bed.", "睡前3小时内不要进食，床头抬高。"),
               T("No meals within 3 hours of bedtime; raise the head of the bed.", "睡前3小时内禁食，抬高床头。")),
              (T("If it's not better in 8 weeks, we'll talk about an endoscopy.", "8周后不好转考虑做胃镜。"),
               T("Consider endoscopy if not improved after 8 weeks.", "8周后无改善考虑胃镜检查。"))],
    )


def soap_gout(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    s_en, s_zh = side(c)
    d = r.randint(1, 3)
    ua = num(r, 8.2, 10.4, 1)
    col = Med(c, "colchicine", dose="0.6 mg", freq="bid")
    return dict(
        reason=T(f"My {s_en} big toe got red and swollen overnight {d} days ago. I can't even put a sheet on it.",
                 f"{d}天前{s_zh}脚大脚趾一夜之间红肿，碰都不能碰。"),
        qa=[(T("Has this happened before?", "以前有过吗？"), T("Once, last year.", "去年有过1次。"))],
        neg=[T("fever", "发热"), T("injury", "外伤")],
        subj=T(f"{d} days of acute pain, redness and swelling of the {s_en} first toe joint; one similar episode last year",
               f"{s_zh}第一跖趾关节急性红肿疼痛{d}天，去年有过1次类似发作"),
        vit=vitals(c, sbp=(126, 148)),
        exam=[(T("The joint at the base of your big toe is red, warm, swollen and very tender.", "大脚趾根部关节红、热、肿，压痛明显。"),
               T(f"erythematous, warm, swollen and very tender {s_en} first MTP joint", f"{s_zh}第一跖趾关节红肿、皮温高、压痛明显"))],
        tests=[(T(f"Your uric acid came back at {ua} mg/dL.", f"血尿酸{ua} mg/dL。"), T(f"Uric acid {ua} mg/dL.", f"血尿酸{ua} mg/dL。"))],
        dx=T(f"Acute gout flare of the {s_en} first MTP joint.", f"{s_zh}第一跖趾关节急性痛风发作。"),
        dx_say=T("This is a gout attack.", "这是痛风发作。"),
        plan=[(T(f"Take {col.s('words')} until the flare settles.", f"{col.s()}，至症状缓解。"), col.s("abbr", True) + T(" until the flare resolves", "，至症状缓解")),
              (T("Cut back on alcohol and red meat, and drink plenty of water.", "少喝酒，少吃红肉，多喝水。"),
               T("Limit alcohol and red meat; hydrate.", "限酒，少食红肉，多饮水。")),
              (T("Come back in 4 weeks and we'll talk about a daily medicine to prevent attacks.", "4周后复诊，再讨论长期降尿酸治疗。"),
               T("Follow up in 4 weeks to discuss urate-lowering therapy.", "4周后复诊，评估降尿酸治疗。"))],
    )


def soap_depression(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    phq0 = r.randint(15, 21)
    phq1 = phq0 - r.randint(3, 6)
    w = c.ch(6, 8)
    return dict(
        reason=T(f"I'm following up on my depression. I've been on the sertraline 50 mg for about {w} weeks.",
                 f"来复查抑郁症，舍曲林50 mg吃了大概{w}周了。"),
        qa=[(T("How are you feeling?", "感觉怎么样？"), T("A bit better, sleeping better, but I still have little energy.", "好一点，睡眠好些了，但还是没精神。")),
            (T("Any side effects?", "有副作用吗？"), T("Some nausea the first week, gone now.", "第1周有点恶心，现在没了。"))],
        neg=[T("thoughts of self-harm", "自伤念头"), T("suicidal thoughts", "自杀念头")],
        subj=T(f"depression follow-up after {w} weeks of sertraline 50 mg; sleep better, energy still low, early nausea resolved",
               f"抑郁症复诊，服用舍曲林50 mg {w}周，睡眠改善，仍乏力，初期恶心已缓解"),
        vit=vitals(c),
        exam=[(T(f"Your PHQ-9 today is {phq1}, down from {phq0}.", f"今天PHQ-9评分{phq1}分，之前是{phq0}分。"),
               T(f"PHQ-9 {phq1} (previously {phq0})", f"PHQ-9评分{phq1}分（既往{phq0}分）")),
              (T("", ""), T("calm, linear thought process, appropriate affect", "情绪平稳，思维连贯，情感适切"))],
        tests=[],
        dx=T("Major depressive disorder, partially improved on sertraline.", "抑郁症，舍曲林治疗后部分改善。"),
        dx_say=T("You're improving, but not all the way yet.", "有好转，但还没完全好。"),
        plan=[(T("Let's increase sertraline to 100 mg daily.", "舍曲林加到每天100 mg。"), T("Increase sertraline to 100 mg daily.", "舍曲林加量至100 mg 每日1次。")),
              (T("Continue therapy sessions.", "继续心理治疗。"), T("Continue psychotherapy.", "继续心理治疗。")),
              (T("If you ever have thoughts of hurting yourself, call 988 or go to the ER.", "如有伤害自己的想法，立即拨打急救电话或去急诊。"),
               T("Crisis plan reviewed.", "已告知危机应对方式。")),
              (T("See you in 4 weeks.", "4周后复诊。"), T("Follow up in 4 weeks.", "4周后复诊。"))],
    )


def soap_asthma(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    n = r.randint(3, 6)
    nights = r.randint(2, 4)
    bf = Med(c, "budesonide_formoterol")
    return dict(
        reason=T(f"My asthma has been acting up. I'm using my albuterol {n} times a week.", f"最近哮喘加重，沙丁胺醇一周要用{n}次。"),
        qa=[(T("Does it wake you up?", "晚上会憋醒吗？"), T(f"About {nights} nights a week.", f"一周大概{nights}个晚上。")),
            (T("Any triggers?", "有什么诱因？"), T("Cold air and running.", "冷空气和跑步。"))],
        neg=[T("fever", "发热"), T("chest pain", "胸痛")],
        subj=T(f"worsening asthma, albuterol use {n} times a week and night waking {nights} nights a week, triggered by cold air and exercise",
               f"哮喘控制变差，每周使用沙丁胺醇{n}次，每周夜间憋醒{nights}次，冷空气及运动诱发"),
        vit=vitals(c, spo2=(95, 98)),
        exam=[(T("I hear a few wheezes when you breathe out.", "呼气时能听到少量哮鸣音。"), T("scattered expiratory wheezes, no distress", "散在呼气相哮鸣音，无呼吸窘迫"))],
        tests=[],
        dx=T("Asthma, not well controlled.", "支气管哮喘，控制不佳。"),
        dx_say=T("Your asthma isn't well controlled right now.", "哮喘现在控制得不好。"),
        plan=[(T(f"Start {bf.s('words')} every day.", f"开始使用{bf.s()}。"), bf.s("abbr", True)),
              (T("Keep albuterol for quick relief.", "沙丁胺醇备用，发作时用。"), T("Albuterol as needed for rescue.", "沙丁胺醇按需使用。")),
              (T("Let's see you in 6 weeks.", "6周后复诊。"), T("Follow up in 6 weeks.", "6周后复诊。"))],
    )


SOAP_CASES = [soap_sinusitis, soap_strep, soap_htn, soap_dm, soap_backpain, soap_uti, soap_migraine, soap_ankle, soap_gerd,
              soap_gout, soap_depression, soap_asthma]


def make_soap_note(c: Ctx) -> tuple[str, str]:
    r, T = c.r, c.T
    case = r.choice(SOAP_CASES)
    p = Person(c, lo=19, hi=82, sex="F" if case is soap_uti else None)
    k = case(c, p)
    v = k["vit"]
    vkeys = ("t", "hr", "bp") if c.chance(0.5) else ("t", "hr", "bp", "rr", "spo2")
    vit_line = vit_str(c, v, 0, vkeys)
    doc = c.doctor()
    dialogue = c.chance(0.75)
    if dialogue:
        D, P = c.ch((T("Doctor", "医生"), T("Patient", "患者")), (T("Dr", "医生"), T("Pt", "患者")), ("D", "P") if not c.zh else ("医生", "患者"))
        sep = "：" if c.zh else ": "
        lines = []
        if c.chance(0.5):
            lines.append(f"{D}{sep}" + T(c.ch(f"Hi, {p.title()}, what brings you in today?", "Good morning. What can I do for you?",
                                              f"Hello {p.title()}, how can I help?"), c.ch(f"{p.title()}您好，今天哪里不舒服？", "您好，今天来看什么？")))
        else:
            lines.append(f"{D}{sep}" + T("What's going on today?", "今天怎么了？"))
        lines.append(f"{P}{sep}{k['reason']}")
        for q, a in k["qa"]:
            lines += [f"{D}{sep}{q}", f"{P}{sep}{a}"]
        neg = k["neg"]
        lines.append(f"{D}{sep}" + T(f"Any {join(c, neg, 'or')}?", f"有没有{join(c, neg)}？"))
        lines.append(f"{P}{sep}" + T(c.ch("No, ", "Nope, ", "No. ") + ", ".join(f"no {x}" for x in neg) + ".",
                                     "没有，" + "，".join(f"没有{x}" for x in neg) + "。"))
        if c.chance(0.4):
            lines.append(f"{D}{sep}" + T("Any allergies to medicines?", "有药物过敏吗？"))
            lines.append(f"{P}{sep}" + T(c.ch("None that I know of.", "No allergies."), "没有。"))
        if c.chance(0.5):
            lines.insert(0, T(f"[Vitals recorded by nurse: {vit_line}]", f"[护士测量生命体征：{vit_line}]"))
        else:
            say = T(f"Your vitals today: {vit_line}.", f"今天的生命体征：{vit_line}。")
            lines.append(f"{D}{sep}" + say)
        lines.append(f"{D}{sep}" + T(c.ch("Let me examine you.", "Let me take a look.", "I'm going to examine you now."), "我给您检查一下。"))
        for said, _ in k["exam"]:
            if said:
                lines.append(f"{D}{sep}{said}")
        for said, _ in k["tests"]:
            lines.append(f"{D}{sep}{said}")
        lines.append(f"{D}{sep}{k['dx_say']}")
        for said, _ in k["plan"]:
            if said:
                lines.append(f"{D}{sep}{said}")
        if c.chance(0.6):
            lines.append(f"{P}{sep}" + T(c.ch("Okay, thank you.", "Sounds good, thanks doctor.", "Thanks."), c.ch("好的，谢谢医生。", "知道了，谢谢。")))
        head = c.ch(
            T(f"Visit transcript - {c.date(p.visit)}\nPatient: {p.name}, {p.age} y/o {'M' if p.sex == 'M' else 'F'}, MRN {p.mrn}\nClinician: {doc}",
              f"门诊对话记录  {c.date(p.visit)}\n患者：{p.name}，{p.mf()}，{p.age}岁，门诊号{p.mrn}\n接诊医生：{doc}"),
            T(f"{p.name} (DOB {p.dob()}, {p.age} y/o {'male' if p.sex == 'M' else 'female'}) - clinic visit {c.date(p.visit)}", f"{p.name}（{p.age}岁，{p.mf()}）门诊 {c.date(p.visit)}"),
            T(f"Telehealth/clinic encounter {c.date(p.visit)} | {p.name} | {p.age}yo {p.mf()} | phone {p.phone}",
              f"就诊日期：{c.date(p.visit)}  姓名：{p.name}  性别：{p.mf()}  年龄：{p.age}岁  电话：{p.phone}"))
        note = assemble(c, [(head, False), ("\n".join(lines), False)])
    else:
        h = heading_style(c)
        pos = k["subj"]
        blocks = [(T(f"Clinic note {c.date(p.visit)} - {p.name}, MRN {p.mrn}", f"门诊病历 {c.date(p.visit)}  {p.name}  门诊号{p.mrn}"), False),
                  (T(f"{p.name.split()[0]} is a {p.age}-year-old {p.noun()} seen today for {pos}. "
                     + c.ch(f"Denies {join(c, k['neg'])}.", f"No {join(c, k['neg'], 'or')}."),
                     f"患者{p.age}岁{p.mf()}性，{pos}。无{join(c, k['neg'])}。"), False),
                  (f"{h(T('Vitals', '生命体征'))} {vit_line}", False),
                  (f"{h(T('Exam', '查体'))} " + T(" ".join(sentence(c, t) for _, t in k["exam"]), "，".join(t for _, t in k["exam"]) + "。"), False)]
        if k["tests"]:
            blocks.append((f"{h(T('Results', '辅助检查'))} " + " ".join(t for _, t in k["tests"]), False))
        blocks.append((f"{h(T('Impression', '考虑'))} " + k["dx"], False))
        blocks.append((f"{h(T('Discussed', '处理'))} " + (" ".join(sentence(c, t) for _, t in k["plan"]) if not c.zh else
                                                          "".join(sentence(c, t) for _, t in k["plan"])), False))
        blocks.append((T(f"Seen by {doc}.", f"接诊医师：{doc}"), True))
        note = assemble(c, blocks)
    # ----- the draft
    if c.zh:
        subj = f"患者{p.mf()}，{p.age}岁，{k['subj']}。否认{join(c, k['neg'])}。"
        obj = f"{vit_line}。" + "，".join(t for _, t in k["exam"]) + "。" + "".join(t for _, t in k["tests"])
        plan = [t for _, t in k["plan"]]
    else:
        subj = f"{p.age}-year-old {p.noun()} with {k['subj']}. Denies {join(c, k['neg'])}."
        obj = f"{vit_line}. " + " ".join(sentence(c, t) for _, t in k["exam"]) + (" " + " ".join(t for _, t in k["tests"]) if k["tests"] else "")
        plan = [t for _, t in k["plan"]]
    tgt = draft(c, "soap_note", [subj, obj, k["dx"], bullets([sentence(c, x) for x in plan])])
    return note, tgt


# =============================================================================================
# diagnostic_report: laboratory / ECG / pathology / endoscopy / lung-function results -> report.


class Lab:
    def __init__(self, c: Ctx, en: str, zh: str, value: str, unit: str, lo: str, hi: str):
        self.name = c.T(en, zh)
        self.value, self.unit, self.lo, self.hi = value, unit, lo, hi
        v = float(value)
        self.flag = "H" if v > float(hi) else ("L" if v < float(lo) else "")
        self.c = c

    def row(self) -> str:
        return f"{self.name:<22} {self.value:>7} {self.unit:<14} {self.flag:<2} {self.lo}-{self.hi}"

    def inline(self) -> str:
        f = f" ({self.flag})" if self.flag else ""
        return f"{self.name} {self.value} {self.unit}{f}".replace("  ", " ")

    def said(self) -> str:
        """The value for the draft: 'hemoglobin 9.1 g/dL (low)'."""
        c = self.c
        word = {"H": c.T("high", "偏高"), "L": c.T("low", "偏低"), "": ""}[self.flag]
        name = self.name if c.zh or self.name.isupper() or self.name[:2].isupper() else self.name[0].lower() + self.name[1:]
        s = f"{name} {self.value} {self.unit}".strip()
        return s + (f" ({word})" if word and not c.zh else (f"（{word}）" if word else ""))


def dx_cbc(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    ida = c.chance(0.7)
    hb = num(r, 7.8, 10.6, 1) if ida else num(r, 12.6, 15.4, 1)
    mcv = r.randint(66, 77) if ida else r.randint(84, 95)
    rdw = num(r, 16.2, 19.8, 1) if ida else num(r, 12.0, 14.0, 1)
    ferr = r.randint(3, 11) if ida else r.randint(40, 180)
    wbc, plt = num(r, 4.6, 9.8, 1), r.randint(180 if not ida else 320, 380 if not ida else 470)
    labs = [Lab(c, "Hemoglobin", "血红蛋白", hb, "g/dL", "12.0", "15.5"), Lab(c, "MCV", "MCV", str(mcv), "fL", "80", "100"),
            Lab(c, "RDW", "RDW", rdw, "%", "11.5", "14.5"), Lab(c, "WBC", "白细胞", wbc, "x10^9/L", "4.0", "11.0"),
            Lab(c, "Platelets", "血小板", str(plt), "x10^9/L", "150", "400"), Lab(c, "Ferritin", "铁蛋白", str(ferr), "ng/mL", "15", "200")]
    ind = c.ch((T("Fatigue and shortness of breath on exertion.", "乏力、活动后气促。"),
                T("Fatigue and exertional shortness of breath.", "乏力伴活动后气促。")),
               (T(f"Heavy menstrual bleeding for {r.randint(3, 8)} months, fatigue." if p.sex == "F" else "Fatigue, pale skin.",
                  "月经量多数月，乏力。" if p.sex == "F" else "乏力、面色苍白。"), None))
    if ida:
        find = T(f"{cap(labs[0].said())}, {labs[1].said()} and {labs[2].said()}. {cap(labs[5].said())}. White cells and platelets normal.",
                 f"{labs[0].said()}，{labs[1].said()}，{labs[2].said()}；{labs[5].said()}；白细胞及血小板正常。")
        if plt > 400:
            find = find.replace(T("White cells and platelets normal.", "白细胞及血小板正常。"),
                                T(f"Platelets {plt} x10^9/L (high); white cells normal.", f"血小板{plt}×10^9/L（偏高），白细胞正常。"))
        concl = T("Microcytic anemia with low ferritin, consistent with iron deficiency anemia.", "小细胞性贫血伴铁蛋白降低，符合缺铁性贫血。")
    else:
        find = T(f"{cap(labs[0].said())}, {labs[1].said()}, {labs[5].said()}; white cells and platelets within normal limits.",
                 f"{labs[0].said()}，{labs[1].said()}，{labs[5].said()}；白细胞及血小板正常。")
        concl = T("Normal complete blood count and iron stores; no anemia.", "血常规及铁储备正常，无贫血。")
    return dict(title=T("COMPLETE BLOOD COUNT AND FERRITIN", "血常规+铁蛋白"), ind=ind, labs=labs, find=find, concl=concl, kind="lab")


def dx_bmp(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    kind = c.ch("aki", "hyperk", "hypona")
    cr = num(r, 2.1, 3.4, 1) if kind == "aki" else num(r, 0.7, 1.1, 1)
    bun = r.randint(38, 70) if kind == "aki" else r.randint(10, 20)
    k = num(r, 5.8, 6.6, 1) if kind == "hyperk" else num(r, 3.6, 4.9, 1)
    na = r.randint(121, 129) if kind == "hypona" else r.randint(136, 143)
    hco3, glu = r.randint(21, 27), r.randint(82, 118)
    egfr = r.randint(18, 34) if kind == "aki" else r.randint(72, 104)
    labs = [Lab(c, "Sodium", "钠", str(na), "mmol/L", "135", "145"), Lab(c, "Potassium", "钾", k, "mmol/L", "3.5", "5.1"),
            Lab(c, "Chloride", "氯", str(r.randint(98, 106)), "mmol/L", "98", "107"), Lab(c, "Bicarbonate", "碳酸氢根", str(hco3), "mmol/L", "22", "29"),
            Lab(c, "BUN", "尿素氮", str(bun), "mg/dL", "7", "20"), Lab(c, "Creatinine", "肌酐", cr, "mg/dL", "0.6", "1.2"),
            Lab(c, "eGFR", "eGFR", str(egfr), "mL/min/1.73m2", "60", "120"), Lab(c, "Glucose", "葡萄糖", str(glu), "mg/dL", "70", "99")]
    labs[-1].flag = "H" if glu > 99 else ""
    if kind == "aki":
        ind = T("Vomiting and poor oral intake on lisinopril.", "呕吐、进食差，服用赖诺普利中。")
        find = T(f"{cap(labs[5].said())} and {labs[4].said()}, eGFR {egfr}. Sodium {na} and potassium {k} mmol/L within range.",
                 f"{labs[5].said()}，{labs[4].said()}，eGFR {egfr}；钠{na} mmol/L、钾{k} mmol/L正常。")
        concl = T(f"Elevated creatinine and BUN with eGFR {egfr}, consistent with acute kidney injury if baseline was normal; electrolytes normal.",
                  f"肌酐及尿素氮升高，eGFR {egfr}，若基线正常符合急性肾损伤；电解质正常。")
    elif kind == "hyperk":
        ind = T("Routine monitoring on spironolactone and lisinopril.", "服用螺内酯及赖诺普利，常规监测。")
        find = T(f"{cap(labs[1].said())}. Sodium {na} mmol/L, creatinine {cr} mg/dL and bicarbonate {hco3} mmol/L normal.",
                 f"{labs[1].said()}；钠{na} mmol/L、肌酐{cr} mg/dL、碳酸氢根{hco3} mmol/L正常。")
        concl = T(f"Hyperkalemia (potassium {k} mmol/L) with normal renal function; repeat to exclude hemolysis and correlate with an ECG.",
                  f"高钾血症（血钾{k} mmol/L），肾功能正常；建议复查排除溶血并结合心电图。")
    else:
        ind = T("Confusion and nausea; on hydrochlorothiazide.", "意识模糊、恶心，服用氢氯噻嗪中。")
        find = T(f"{cap(labs[0].said())}. Potassium {k} mmol/L, creatinine {cr} mg/dL and glucose {glu} mg/dL.",
                 f"{labs[0].said()}；钾{k} mmol/L，肌酐{cr} mg/dL，葡萄糖{glu} mg/dL。")
        concl = T(f"Moderate hyponatremia (sodium {na} mmol/L) with normal renal function." if na >= 125 else
                  f"Severe hyponatremia (sodium {na} mmol/L) with normal renal function.",
                  f"{'中度' if na >= 125 else '重度'}低钠血症（血钠{na} mmol/L），肾功能正常。")
    return dict(title=T("BASIC METABOLIC PANEL", "肾功能+电解质"), ind=(ind, None), labs=labs, find=find, concl=concl, kind="lab")


def dx_lipid_a1c(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    a1c = num(r, 5.0, 9.8, 1)
    fpg = int(float(a1c) * 22 - 20 + r.randint(-6, 6))
    ldl, hdl, tg = r.randint(95, 205), r.randint(34, 62), r.randint(90, 320)
    tc = ldl + hdl + tg // 5
    labs = [Lab(c, "Hemoglobin A1c", "糖化血红蛋白", a1c, "%", "4.0", "5.6"), Lab(c, "Fasting glucose", "空腹血糖", str(fpg), "mg/dL", "70", "99"),
            Lab(c, "Total cholesterol", "总胆固醇", str(tc), "mg/dL", "0", "199"), Lab(c, "LDL cholesterol", "LDL胆固醇", str(ldl), "mg/dL", "0", "99"),
            Lab(c, "HDL cholesterol", "HDL胆固醇", str(hdl), "mg/dL", "40", "100"), Lab(c, "Triglycerides", "甘油三酯", str(tg), "mg/dL", "0", "149")]
    a = float(a1c)
    if a >= 6.5:
        g = T(f"HbA1c {a1c}% in the diabetes range", f"糖化血红蛋白{a1c}%，达糖尿病诊断标准")
    elif a >= 5.7:
        g = T(f"HbA1c {a1c}% in the prediabetes range", f"糖化血红蛋白{a1c}%，处于糖尿病前期")
    else:
        g = T(f"normal HbA1c ({a1c}%)", f"糖化血红蛋白{a1c}%，正常")
    lip = []
    if ldl >= 100:
        lip.append(T(f"elevated LDL cholesterol ({ldl} mg/dL)", f"LDL胆固醇升高（{ldl} mg/dL）"))
    if tg >= 150:
        lip.append(T(f"raised triglycerides ({tg} mg/dL)", f"甘油三酯升高（{tg} mg/dL）"))
    if hdl < 40:
        lip.append(T(f"low HDL ({hdl} mg/dL)", f"HDL偏低（{hdl} mg/dL）"))
    lip_s = join(c, lip) if lip else T("a normal lipid profile", "血脂正常")
    ind = T("Annual screening; family history of diabetes, BMI " + num(r, 28, 36, 1) + ".", "体检筛查，有糖尿病家族史。")
    find = T(f"{cap(labs[0].said())}; {labs[1].said()}. {cap(labs[2].said())}, {labs[3].said()}, {labs[4].said()}, {labs[5].said()}.",
             f"{labs[0].said()}，{labs[1].said()}；{labs[2].said()}，{labs[3].said()}，{labs[4].said()}，{labs[5].said()}。")
    concl = T(f"{cap(g)}, with {lip_s}.", f"{g}；{lip_s}。")
    return dict(title=T("HBA1C AND FASTING LIPID PANEL", "糖化血红蛋白+血脂"), ind=(ind, None), labs=labs, find=find, concl=concl, kind="lab")


def dx_thyroid(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    kind = c.ch("hypo", "hyper", "subclinical")
    if kind == "hypo":
        tsh, ft4 = num(r, 12.0, 38.0, 1), num(r, 0.3, 0.7, 2)
        ind = T("Fatigue, weight gain and cold intolerance.", "乏力、体重增加、怕冷。")
        concl = T("Elevated TSH with low free T4, consistent with primary hypothyroidism.", "TSH升高伴游离T4降低，符合原发性甲状腺功能减退症。")
    elif kind == "hyper":
        tsh, ft4 = num(r, 0.01, 0.05, 2), num(r, 2.4, 4.6, 1)
        ind = T("Palpitations, weight loss and tremor.", "心悸、体重下降、手抖。")
        concl = T("Suppressed TSH with high free T4, consistent with hyperthyroidism.", "TSH被抑制伴游离T4升高，符合甲状腺功能亢进症。")
    else:
        tsh, ft4 = num(r, 5.2, 9.4, 1), num(r, 0.9, 1.5, 2)
        ind = T("Mild fatigue; follow-up of a borderline TSH.", "轻度乏力，复查临界TSH。")
        concl = T("Mildly elevated TSH with normal free T4, consistent with subclinical hypothyroidism.", "TSH轻度升高，游离T4正常，符合亚临床甲状腺功能减退。")
    labs = [Lab(c, "TSH", "TSH", tsh, "mIU/L", "0.40", "4.50"), Lab(c, "Free T4", "游离T4", ft4, "ng/dL", "0.80", "1.80")]
    if kind != "subclinical" and c.chance(0.6):
        tpo = r.randint(180, 900) if kind == "hypo" else r.randint(5, 30)
        labs.append(Lab(c, "Anti-TPO antibodies", "抗TPO抗体", str(tpo), "IU/mL", "0", "34"))
        if kind == "hypo":
            concl = concl.rstrip(".。") + T(f"; positive anti-TPO antibodies ({tpo} IU/mL) suggest Hashimoto thyroiditis.",
                                            f"，抗TPO抗体阳性（{tpo} IU/mL），提示桥本甲状腺炎。")
    find = T(", ".join(cap(l.said()) if i == 0 else l.said() for i, l in enumerate(labs)) + ".", "，".join(l.said() for l in labs) + "。")
    return dict(title=T("THYROID FUNCTION TESTS", "甲状腺功能"), ind=(ind, None), labs=labs, find=find, concl=concl, kind="lab")


def dx_ecg(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    kind = c.ch("nsr", "af", "avb1", "qtc", "brady")
    rate = {"nsr": r.randint(62, 92), "af": r.randint(104, 138), "avb1": r.randint(60, 80), "qtc": r.randint(64, 88),
            "brady": r.randint(42, 54)}[kind]
    pr = r.randint(226, 280) if kind == "avb1" else r.randint(140, 196)
    qrs = r.randint(84, 108)
    qt = r.randint(360, 420)
    qtc = r.randint(492, 530) if kind == "qtc" else r.randint(400, 446)
    axis = r.randint(-10, 75)
    rows = [T(f"Ventricular rate: {rate} bpm", f"心室率：{rate}次/分"),
            T(f"PR interval: {pr} ms" if kind != "af" else "PR interval: not measurable", f"PR间期：{pr} ms" if kind != "af" else "PR间期：无法测量"),
            T(f"QRS duration: {qrs} ms", f"QRS时限：{qrs} ms"), T(f"QT/QTc: {qt}/{qtc} ms", f"QT/QTc：{qt}/{qtc} ms"),
            T(f"Axis: {axis} degrees", f"电轴：{axis}°")]
    if kind == "af":
        rows.append(T("Rhythm: irregularly irregular, no discernible P waves", "节律：RR间期绝对不等，未见P波"))
    else:
        rows.append(T("Rhythm: regular, P wave before every QRS", "节律：规整，每个QRS波前均有P波"))
    st = T("No ST elevation or depression.", "未见ST段抬高或压低。")
    rows.append(st)
    ind = c.ch(T("Palpitations.", "心悸。"), T("Preoperative evaluation.", "术前评估。"), T("Dizziness.", "头晕。"),
               T("Started on azithromycin and ondansetron; QT monitoring." if kind == "qtc" else "Chest discomfort.",
                 "使用阿奇霉素及昂丹司琼，监测QT间期。" if kind == "qtc" else "胸部不适。"))
    concl = {"nsr": T("Normal sinus rhythm. Normal ECG.", "窦性心律，正常心电图。"),
             "af": T(f"Atrial fibrillation with rapid ventricular response, rate {rate}.", f"心房颤动伴快速心室率（{rate}次/分）。"),
             "avb1": T(f"Sinus rhythm with first-degree AV block (PR {pr} ms).", f"窦性心律，一度房室传导阻滞（PR {pr} ms）。"),
             "qtc": T(f"Sinus rhythm with a prolonged QTc of {qtc} ms.", f"窦性心律，QTc延长（{qtc} ms）。"),
             "brady": T(f"Sinus bradycardia, rate {rate}; otherwise normal.", f"窦性心动过缓（{rate}次/分），余未见异常。")}[kind]
    find = T(f"Rate {rate} bpm, " + ("irregularly irregular rhythm without P waves" if kind == "af" else f"regular rhythm, PR {pr} ms")
             + f", QRS {qrs} ms, QTc {qtc} ms, axis {axis} degrees. No ST elevation or depression.",
             f"心室率{rate}次/分，" + ("RR间期绝对不等，未见P波" if kind == "af" else f"节律规整，PR间期{pr} ms")
             + f"，QRS {qrs} ms，QTc {qtc} ms，电轴{axis}°。未见ST段抬高或压低。")
    return dict(title=T("12-LEAD ECG", "12导联心电图"), ind=(ind, None), rows=rows, find=find, concl=concl, kind="rows")


def dx_path(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    kind = c.ch("polyp", "skin", "gastric", "appendix")
    if kind == "polyp":
        cm = c.ch("0.4", "0.6", "0.8", "1.2")
        hgd = c.chance(0.15)
        site_en, site_zh = c.ch(("sigmoid colon", "乙状结肠"), ("ascending colon", "升结肠"), ("transverse colon", "横结肠"))
        ind = T(f"Screening colonoscopy; {cm} cm polyp in the {site_en}.", f"结肠镜筛查，{site_zh}息肉{cm} cm。")
        rows = [T(f"Specimen: {site_en} polyp, snare polypectomy", f"标本：{site_zh}息肉，圈套切除"),
                T(f"Gross: one tan polypoid fragment, {cm} cm", f"大体：灰褐色息肉样组织1块，大小{cm} cm"),
                T("Microscopic: tubular glands lined by elongated, hyperchromatic nuclei"
                  + (" with areas of complex cribriform architecture and marked atypia" if hgd else " without high-grade features")
                  + ". Stalk margin free.",
                  "镜下：腺管状结构，细胞核拉长、深染" + ("，局部筛状结构，异型明显" if hgd else "，未见高级别改变") + "。蒂部切缘阴性。")]
        find = T(f"A {cm} cm polyp from the {site_en} showing tubular glands with " + ("high-grade" if hgd else "low-grade")
                 + " dysplasia; the stalk margin is free.", f"{site_zh}息肉{cm} cm，腺管状结构，" + ("高级别" if hgd else "低级别") + "上皮内瘤变，蒂部切缘阴性。")
        concl = T("Tubular adenoma with " + ("high-grade dysplasia" if hgd else "low-grade dysplasia") + ", completely excised.",
                  "管状腺瘤伴" + ("高级别" if hgd else "低级别") + "上皮内瘤变，已完整切除。")
    elif kind == "skin":
        mm = r.randint(4, 12)
        site_en, site_zh = c.ch(("left nasal ala", "左侧鼻翼"), ("right cheek", "右侧面颊"), ("upper back", "上背部"))
        ind = T(f"Pearly papule on the {site_en}, {mm} mm, enlarging.", f"{site_zh}珍珠样丘疹，{mm} mm，逐渐增大。")
        margin = c.chance(0.6)
        rows = [T(f"Specimen: skin, {site_en}, shave biopsy", f"标本：{site_zh}皮肤，削切活检"),
                T(f"Gross: tan skin shave, {mm} mm", f"大体：灰褐色皮肤组织，{mm} mm"),
                T("Microscopic: nests of basaloid cells with peripheral palisading and retraction artifact in the dermis. "
                  + ("Deep margin uninvolved." if margin else "Tumor extends to the deep margin."),
                  "镜下：真皮内基底样细胞巢，周边栅栏状排列，可见收缩间隙。" + ("深切缘未见肿瘤。" if margin else "肿瘤累及深切缘。"))]
        find = T("Nests of basaloid cells with peripheral palisading and retraction artifact in the dermis; the deep margin is "
                 + ("uninvolved." if margin else "involved."), "真皮内基底样细胞巢，周边栅栏状排列；深切缘" + ("未受累。" if margin else "受累。"))
        concl = T("Basal cell carcinoma, nodular type; " + ("deep margin clear." if margin else "tumor present at the deep margin."),
                  "基底细胞癌（结节型）；" + ("深切缘阴性。" if margin else "深切缘阳性。"))
    elif kind == "gastric":
        ind = T("Epigastric pain and dyspepsia; gastric antral erythema on endoscopy.", "上腹痛、消化不良，胃镜见胃窦黏膜充血。")
        hp = c.chance(0.65)
        rows = [T("Specimen: gastric antrum and body, biopsies", "标本：胃窦及胃体黏膜活检"),
                T(f"Gross: {r.randint(3, 6)} tan mucosal fragments", f"大体：灰白色黏膜组织{r.randint(3, 6)}块"),
                T("Microscopic: chronic active inflammation of the lamina propria. "
                  + ("Curved rod-shaped organisms on the surface epithelium, confirmed by immunostain." if hp else "No organisms on immunostain.")
                  + " No intestinal metaplasia or dysplasia.",
                  "镜下：固有层慢性活动性炎。" + ("表面上皮见弯曲杆状菌，免疫组化证实。" if hp else "免疫组化未见病原体。") + "未见肠化及异型增生。")]
        find = T("Chronic active gastritis" + (" with Helicobacter organisms on immunostain" if hp else " without organisms on immunostain")
                 + "; no intestinal metaplasia or dysplasia.", "慢性活动性胃炎，" + ("免疫组化见幽门螺杆菌" if hp else "免疫组化未见病原体") + "，无肠化及异型增生。")
        concl = T("Helicobacter pylori gastritis, chronic active; no intestinal metaplasia or dysplasia." if hp else
                  "Chronic active gastritis without Helicobacter pylori; no intestinal metaplasia or dysplasia.",
                  "幽门螺杆菌相关性慢性活动性胃炎，无肠化及异型增生。" if hp else "慢性活动性胃炎，幽门螺杆菌阴性，无肠化及异型增生。")
    else:
        cm = num(r, 5.5, 8.5, 1)
        ind = T("Acute right lower quadrant pain; appendectomy.", "急性右下腹痛，行阑尾切除术。")
        perf = c.chance(0.25)
        rows = [T("Specimen: appendix, laparoscopic appendectomy", "标本：阑尾，腹腔镜阑尾切除"),
                T(f"Gross: appendix {cm} cm long with a dull, fibrinous serosa" + (" and a 0.3 cm perforation" if perf else ""),
                  f"大体：阑尾长{cm} cm，浆膜面灰暗，附纤维素渗出" + ("，见0.3 cm穿孔" if perf else "")),
                T("Microscopic: transmural neutrophilic infiltrate with mucosal ulceration and serositis. No neoplasm.",
                  "镜下：全层中性粒细胞浸润，黏膜溃疡，浆膜炎。未见肿瘤。")]
        find = T(f"Appendix {cm} cm with transmural neutrophilic inflammation, mucosal ulceration and serositis"
                 + (", with a 0.3 cm perforation" if perf else "") + "; no neoplasm.",
                 f"阑尾长{cm} cm，全层中性粒细胞浸润，黏膜溃疡及浆膜炎" + ("，伴0.3 cm穿孔" if perf else "") + "；未见肿瘤。")
        concl = T("Acute " + ("perforated " if perf else "") + "appendicitis with periappendicitis; no neoplasm.",
                  "急性" + ("穿孔性" if perf else "") + "阑尾炎伴阑尾周围炎，未见肿瘤。")
    return dict(title=T("SURGICAL PATHOLOGY REPORT", "病理诊断报告"), ind=(ind, None), rows=rows, find=find, concl=concl, kind="rows")


def dx_pft(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    kind = c.ch("obstructive", "obstructive", "normal", "restrictive")
    fvc_p = r.randint(82, 104) if kind != "restrictive" else r.randint(55, 72)
    ratio = r.randint(48, 66) if kind == "obstructive" else r.randint(74, 86)
    fev1_p = int(fvc_p * ratio / 78) if kind == "obstructive" else r.randint(fvc_p - 6, fvc_p + 2)
    bd = r.randint(13, 22) if kind == "obstructive" and c.chance(0.4) else r.randint(2, 8)
    tlc = r.randint(58, 74) if kind == "restrictive" else r.randint(88, 118)
    dlco = r.randint(48, 68) if kind != "normal" else r.randint(82, 104)
    rows = [T(f"FVC: {fvc_p}% predicted", f"FVC：占预计值{fvc_p}%"), T(f"FEV1: {fev1_p}% predicted", f"FEV1：占预计值{fev1_p}%"),
            T(f"FEV1/FVC: {ratio}%", f"FEV1/FVC：{ratio}%"), T(f"Post-bronchodilator FEV1 change: +{bd}%", f"支气管舒张后FEV1改善：+{bd}%"),
            T(f"TLC: {tlc}% predicted", f"TLC：占预计值{tlc}%"), T(f"DLCO: {dlco}% predicted", f"DLCO：占预计值{dlco}%")]
    ind = c.ch(T(f"Chronic cough and exertional dyspnea; {r.randint(20, 50)} pack-year smoker.", "慢性咳嗽、活动后气促，长期吸烟。"),
               T("Progressive shortness of breath.", "进行性气促。"))
    find = T(f"FEV1/FVC {ratio}%, FEV1 {fev1_p}% and FVC {fvc_p}% predicted, bronchodilator change +{bd}%. TLC {tlc}% and DLCO {dlco}% predicted.",
             f"FEV1/FVC {ratio}%，FEV1占预计值{fev1_p}%，FVC占预计值{fvc_p}%，舒张后改善+{bd}%；TLC占预计值{tlc}%，DLCO占预计值{dlco}%。")
    if kind == "obstructive":
        sev = T("mild" if fev1_p >= 80 else ("moderate" if fev1_p >= 50 else "severe"), "轻度" if fev1_p >= 80 else ("中度" if fev1_p >= 50 else "重度"))
        concl = T(f"{cap(sev)} obstructive ventilatory defect" + (" with a significant bronchodilator response." if bd >= 12 else
                  " without significant bronchodilator response.") + (" Reduced DLCO." if dlco < 75 else ""),
                  f"{sev}阻塞性通气功能障碍，" + ("支气管舒张试验阳性。" if bd >= 12 else "支气管舒张试验阴性。") + ("弥散功能降低。" if dlco < 75 else ""))
    elif kind == "restrictive":
        concl = T(f"Restrictive defect (TLC {tlc}% predicted) with reduced DLCO.", f"限制性通气功能障碍（TLC占预计值{tlc}%），伴弥散功能降低。")
    else:
        concl = T("Normal spirometry, lung volumes and diffusing capacity.", "肺通气功能、肺容量及弥散功能正常。")
    return dict(title=T("PULMONARY FUNCTION TESTS", "肺功能检查"), ind=(ind, None), rows=rows, find=find, concl=concl, kind="rows")


def dx_colonoscopy(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    n = r.randint(1, 3)
    mm = r.randint(4, 9)
    prep = c.ch(T("good", "良好"), T("adequate", "尚可"), T("excellent", "优"))
    ci = r.randint(6, 14)
    divert = c.chance(0.5)
    rows = [T(f"Preparation: {prep} (Boston score {r.randint(7, 9)})", f"肠道准备：{prep}"),
            T(f"Cecum reached, ileocecal valve and appendiceal orifice identified. Withdrawal time {ci} minutes.",
              f"进镜至回盲部，见回盲瓣及阑尾开口，退镜时间{ci}分钟。"),
            T(f"{n} sessile {'polyp' if n == 1 else 'polyps'} in the sigmoid colon, largest {mm} mm, removed with cold snare and sent to pathology.",
              f"乙状结肠见{n}枚无蒂息肉，最大{mm} mm，冷圈套切除，标本送病理。"),
            T("Scattered diverticula in the sigmoid colon." if divert else "No diverticula.", "乙状结肠散在憩室。" if divert else "未见憩室。"),
            T("Retroflexion: small internal hemorrhoids.", "倒镜：少许内痔。")]
    ind = T(f"Average-risk colorectal cancer screening, age {p.age}.", f"结直肠癌筛查，{p.age}岁。")
    find = T(f"{prep.capitalize()} preparation; cecum reached with a {ci}-minute withdrawal. {n} sessile sigmoid {'polyp' if n == 1 else 'polyps'} up to {mm} mm removed by cold snare. "
             + ("Scattered sigmoid diverticula. " if divert else "") + "Small internal hemorrhoids on retroflexion.",
             f"肠道准备{prep}，进镜至回盲部，退镜{ci}分钟；乙状结肠{n}枚无蒂息肉，最大{mm} mm，已冷圈套切除。" + ("乙状结肠憩室。" if divert else "") + "少许内痔。")
    concl = T(f"{n} sigmoid {'polyp' if n == 1 else 'polyps'} up to {mm} mm, removed; pathology pending." + (" Sigmoid diverticulosis." if divert else "")
              + " Internal hemorrhoids.", f"乙状结肠息肉{n}枚（最大{mm} mm），已切除，待病理。" + ("乙状结肠憩室病。" if divert else "") + "内痔。")
    return dict(title=T("COLONOSCOPY REPORT", "结肠镜检查报告"), ind=(ind, None), rows=rows, find=find, concl=concl, kind="rows")


def dx_ua(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    wbc = r.randint(25, 100)
    cfu = c.ch("50,000", "100,000", ">100,000")
    org_en, org_zh = c.ch(("Escherichia coli", "大肠埃希菌"), ("Klebsiella pneumoniae", "肺炎克雷伯菌"), ("Proteus mirabilis", "奇异变形杆菌"))
    rows = [T("Appearance: cloudy", "外观：浑浊"), T("Leukocyte esterase: positive (2+)", "白细胞酯酶：阳性（2+）"), T("Nitrite: positive", "亚硝酸盐：阳性"),
            T(f"WBC: {wbc} /hpf", f"白细胞：{wbc}/HP"), T("RBC: 3-5 /hpf", "红细胞：3-5/HP"), T("Bacteria: many", "细菌：大量"),
            T(f"Culture: {cfu} CFU/mL {org_en}; susceptible to nitrofurantoin and ceftriaxone, resistant to ampicillin",
              f"培养：{org_zh} {cfu} CFU/mL，对呋喃妥因及头孢曲松敏感，对氨苄西林耐药")]
    ind = T("Dysuria and urinary frequency.", "尿频、尿痛。")
    find = T(f"Cloudy urine with positive leukocyte esterase and nitrite, {wbc} WBC/hpf and many bacteria. Culture grew {cfu} CFU/mL {org_en}, "
             "susceptible to nitrofurantoin and ceftriaxone, resistant to ampicillin.",
             f"尿液浑浊，白细胞酯酶及亚硝酸盐阳性，白细胞{wbc}/HP，细菌大量；培养{org_zh} {cfu} CFU/mL，对呋喃妥因及头孢曲松敏感，对氨苄西林耐药。")
    concl = T(f"Urinary tract infection with {org_en}; ampicillin-resistant, nitrofurantoin-susceptible.",
              f"{org_zh}尿路感染，氨苄西林耐药，呋喃妥因敏感。")
    return dict(title=T("URINALYSIS WITH REFLEX CULTURE", "尿常规+尿培养"), ind=(ind, None), rows=rows, find=find, concl=concl, kind="rows")


DX_CASES = [dx_cbc, dx_bmp, dx_lipid_a1c, dx_thyroid, dx_ecg, dx_ecg, dx_path, dx_path, dx_pft, dx_colonoscopy, dx_ua]


def make_diagnostic_report(c: Ctx) -> tuple[str, str]:
    r = c.r
    case = r.choice(DX_CASES)
    p = Person(c, lo=45 if case is dx_colonoscopy else 19, hi=84)
    k = case(c, p)
    ind_note = k["ind"][0]
    ind_tgt = k["ind"][1] or k["ind"][0]
    when = p.visit
    doc = c.doctor()
    if k["kind"] == "lab":
        if c.zh:
            body = "项目  结果  单位  提示  参考范围\n" + "\n".join(f"{l.name}  {l.value} {l.unit}  {'↑' if l.flag == 'H' else ('↓' if l.flag == 'L' else '-')}  {l.lo}-{l.hi}" for l in k["labs"])
        elif c.chance(0.6):
            body = f"{'TEST':<22} {'RESULT':>7} {'UNITS':<14} {'FL':<2} REFERENCE\n" + "\n".join(l.row() for l in k["labs"])
        else:
            body = "; ".join(l.inline() for l in k["labs"]) + "."
    else:
        body = "\n".join(k["rows"]) if c.zh or c.chance(0.7) else " ".join(sentence(c, x) for x in k["rows"])
    if c.zh:
        sexw = "男" if p.sex == "M" else "女"
        head = c.ch(f"{c.hospital()}\n{k['title']}\n姓名：{p.name}  性别：{sexw}  年龄：{p.age}岁  病历号：{p.mrn}\n"
                    f"送检日期：{c.date(when)}  送检医师：{doc}",
                    f"{k['title']}  {c.date(when)}\n患者：{p.name}（{sexw}，{p.age}岁），病历号{p.mrn}，申请医生：{doc}")
        note = assemble(c, [(head, False), (f"{c.ch('临床资料', '临床信息', '检查原因')}：{ind_note}", False),
                            (c.ch("结果：", "检查结果：", "所见：") + "\n" + body, False),
                            (f"报告人：{c.doctor(False)}  审核人：{c.doctor(False)}", True)])
    else:
        head = c.ch(f"{c.hospital()}\n{k['title']}\nPatient: {p.name}   MRN: {p.mrn}   DOB: {p.dob()}   Sex: {p.mf()}\n"
                    f"{'Collected' if k['kind'] == 'lab' else 'Date of service'}: {c.date(when)}   Ordering provider: {doc}",
                    f"{k['title']} - {p.name} ({p.age}{p.mf()}), MRN {p.mrn}\nDate: {c.date(when)}. Requested by {doc}.",
                    f"{p.name} | DOB {p.dob()} | MRN {p.mrn}\n{k['title'].title()} performed {c.date(when)}")
        lab = c.ch("Clinical information", "Reason for test", "Clinical history", "Indication")
        spec = {"lab": c.ch("Specimen: serum and whole blood (EDTA), venipuncture", "Specimen type: blood, venous draw"),
                "rows": c.ch("Location: outpatient procedure unit", "Setting: outpatient", "Location: main campus")}[k["kind"]]
        status = c.ch(f"Status: final. Accession {c.accession()}.", f"Report status: final, verified {c.date(when)}.",
                      "Status: final report.")
        note = assemble(c, [(head, False), (f"{spec}. {status}", False), (f"{lab}: {ind_note}", False),
                            (c.ch("Results:", "RESULTS", "Data:", "Report:") + "\n" + body, False),
                            (c.ch(f"Verified by {c.doctor()}.", f"Reported by {c.doctor()}, " + (c.ch("MD", "laboratory medicine") if k["kind"] == "lab" else "MD") + "."), True)])
    tgt = draft(c, "diagnostic_report", [ind_tgt, k["find"], k["concl"]])
    return note, tgt


# =============================================================================================
# operative_note: an operative dictation / brief op note / OR record -> operative note.

ANES = {  # key: (abbreviation in notes, full, Chinese)
    "geta": ("GETA", "General endotracheal anesthesia", "气管插管全身麻醉"),
    "lma": ("general/LMA", "General anesthesia with a laryngeal mask airway", "喉罩全身麻醉"),
    "spinal": ("spinal", "Spinal anesthesia", "腰麻（蛛网膜下腔阻滞）"),
    "spinal_acb": ("spinal + adductor canal block", "Spinal anesthesia with an adductor canal block", "腰麻复合收肌管阻滞"),
    "mac": ("MAC/local", "Monitored anesthesia care with local anesthetic", "监护麻醉复合局部浸润麻醉"),
    "block": ("supraclavicular block + sedation", "Supraclavicular brachial plexus block with sedation", "锁骨上臂丛神经阻滞复合镇静"),
    "cse": ("CSE", "Combined spinal-epidural anesthesia", "腰硬联合麻醉"),
}


def op_appy(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    kind = c.ch("simple", "simple", "perf", "gangrene")
    post = {"simple": T("Acute suppurative appendicitis without perforation", "急性化脓性阑尾炎，未穿孔"),
            "perf": T("Perforated appendicitis with localized purulent fluid", "急性穿孔性阑尾炎伴局限性脓液"),
            "gangrene": T("Gangrenous appendicitis without perforation", "急性坏疽性阑尾炎，未穿孔")}[kind]
    ml = r.randint(20, 80)
    pos_en, pos_zh = c.ch(("retrocecal", "盲肠后位"), ("pelvic", "盆位"), ("anterior", "回肠前位"), ("subcecal", "盲肠下位"))
    dia = r.randint(9, 15)
    find = {"simple": T(f"Inflamed, edematous {pos_en} appendix, {dia} mm in diameter, with fibrinous exudate; base healthy; no perforation or abscess",
                        f"阑尾{pos_zh}，充血水肿，直径约{dia} mm，表面纤维素渗出，根部正常，无穿孔及脓肿"),
            "perf": T(f"Perforated appendix near the tip with {ml} mL of purulent fluid in the right lower quadrant and pelvis",
                      f"阑尾尖端穿孔，右下腹及盆腔脓液约{ml} mL"),
            "gangrene": T("Gangrenous, friable distal appendix; base viable; no perforation", "阑尾远端坏疽、质脆，根部血运好，无穿孔")}[kind]
    steps = T("Three ports placed. The mesoappendix was divided with a stapler and the appendix base stapled and removed in a bag."
              + (" The pelvis and right gutter were irrigated until clear." if kind == "perf" else ""),
              "建立3个穿刺孔，切割闭合器处理阑尾系膜及根部，阑尾装袋取出。" + ("冲洗盆腔及右结肠旁沟至清亮。" if kind == "perf" else ""))
    return dict(pre=T("Acute appendicitis", "急性阑尾炎"), post=post, proc=T("Laparoscopic appendectomy", "腹腔镜阑尾切除术"),
                anes=c.ch("geta"), find=find, ebl=r.randint(5, 30), steps=steps, spec=T("Appendix", "阑尾"),
                drain=T("None", "无") if kind != "perf" else T("15 Fr drain in the pelvis", "盆腔引流管1根"), comp=None)


def op_chole(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    acute = c.chance(0.5)
    spill = c.chance(0.15)
    pre = T("Acute calculous cholecystitis", "急性结石性胆囊炎") if acute else T("Symptomatic cholelithiasis", "症状性胆囊结石")
    post = (T("Acute gangrenous cholecystitis", "急性坏疽性胆囊炎") if acute and c.chance(0.4) else None)
    find = (T("Distended, inflamed gallbladder with omental adhesions; critical view of safety obtained", "胆囊肿大、充血，与网膜粘连；获得关键安全视野")
            if acute else T("Thin-walled gallbladder with multiple stones; critical view of safety obtained", "胆囊壁薄，内有多发结石；获得关键安全视野"))
    comp = (T("Gallbladder perforation with bile spillage during dissection, irrigated; no stones lost",
              "剥离时胆囊破裂，胆汁溢出，已冲洗，无结石遗落") if spill else None)
    steps = T("Four ports placed. The cystic duct and cystic artery were clipped and divided and the gallbladder removed from the liver bed with cautery.",
              "建立4个穿刺孔，夹闭并离断胆囊管及胆囊动脉，电凝自胆囊床剥离胆囊。")
    return dict(pre=pre, post=post, proc=T("Laparoscopic cholecystectomy", "腹腔镜胆囊切除术"), anes="geta", find=find,
                ebl=r.randint(10, 60), steps=steps, spec=T("Gallbladder", "胆囊"), drain=T("None", "无"), comp=comp)


def op_hernia(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    s_en, s_zh = side(c)
    kind_en, kind_zh = c.ch(("indirect", "斜疝"), ("direct", "直疝"))
    w, l = c.ch((6, 11), (7, 15), (8, 15))
    find = (T(f"{cap(kind_en)} hernia sac lateral to the inferior epigastric vessels with a small cord lipoma" if kind_en == "indirect" else
              "Direct defect in the floor of the inguinal canal; no indirect sac",
              "疝囊位于腹壁下动脉外侧，伴小精索脂肪瘤" if kind_en == "indirect" else "腹股沟管后壁薄弱直疝，未见斜疝囊"))
    steps = T(f"Oblique groin incision. The sac was {'dissected off the cord and reduced' if kind_en == 'indirect' else 'reduced'}. "
              f"A {w} x {l} cm polypropylene mesh was sutured to the shelving edge and conjoint tendon.",
              f"腹股沟斜切口，{'游离并回纳疝囊' if kind_en == 'indirect' else '回纳疝囊'}，以{w}×{l} cm聚丙烯补片修补腹股沟管后壁。")
    return dict(pre=T(f"{cap(s_en)} inguinal hernia", f"{s_zh}侧腹股沟疝"), post=T(f"{cap(s_en)} {kind_en} inguinal hernia", f"{s_zh}侧腹股沟{kind_zh}"),
                proc=T(f"Open repair of {s_en} inguinal hernia with mesh (Lichtenstein)", f"{s_zh}侧腹股沟疝无张力修补术（Lichtenstein）"),
                anes=c.ch("lma", "spinal", "mac"), find=find, ebl=r.randint(5, 20), steps=steps, spec=T("None", "无"),
                drain=T("None", "无"), comp=None, male=True)


def op_tka(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    s_en, s_zh = side(c)
    tq = r.randint(48, 85)
    var = r.randint(5, 14)
    return dict(pre=T(f"Primary osteoarthritis of the {s_en} knee", f"{s_zh}膝原发性骨关节炎"), post=None,
                proc=T(f"{cap(s_en)} total knee arthroplasty, cemented", f"{s_zh}侧全膝关节置换术（骨水泥型）"), anes="spinal_acb",
                find=T(f"Tricompartmental degenerative change with full-thickness cartilage loss in the medial compartment and {var} degrees of varus",
                       f"三间室退行性变，内侧间室软骨全层缺失，内翻{var}°"),
                ebl=r.randint(100, 300), steps=T(f"Medial parapatellar approach under tourniquet ({tq} minutes). Bone cuts made with standard guides; components cemented; patella resurfaced.",
                                                 f"止血带下（{tq}分钟）髌旁内侧入路，截骨后骨水泥固定假体，髌骨置换。"),
                spec=T("Bone cuts to pathology", "截骨送病理"), drain=T("None", "无"), comp=None, old=True)


def op_radius(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    s_en, s_zh = side(c)
    return dict(pre=T(f"Displaced {s_en} distal radius fracture", f"{s_zh}桡骨远端骨折（移位）"),
                post=T(f"Displaced intra-articular {s_en} distal radius fracture", f"{s_zh}桡骨远端关节内骨折（移位）"),
                proc=T(f"Open reduction and internal fixation of the {s_en} distal radius with a volar locking plate",
                       f"{s_zh}桡骨远端骨折切开复位掌侧锁定钢板内固定术"),
                anes=c.ch("lma", "block"),
                find=T("Dorsally angulated intra-articular fracture with a volar cortical gap; anatomic reduction confirmed on fluoroscopy",
                       "骨折向背侧成角并累及关节面，掌侧皮质分离；透视确认解剖复位"),
                ebl=r.randint(10, 50), steps=T("Volar (FCR) approach. The fracture was reduced and fixed with a locking plate and screws.",
                                               "掌侧入路，复位骨折后以锁定钢板螺钉固定。"),
                spec=T("None", "无"), drain=T("None", "无"), comp=None)


def op_csection(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    wk = r.randint(37, 41)
    repeat = c.chance(0.5)
    g = r.randint(2780, 3950)
    a1, a2 = c.ch((8, 9), (7, 9), (9, 9))
    sex_en, sex_zh = c.ch(("female", "女"), ("male", "男"))
    pre = (T(f"Intrauterine pregnancy at {wk} weeks, prior cesarean section, desires repeat", f"宫内妊娠{wk}周，瘢痕子宫") if repeat else
           T(f"Intrauterine pregnancy at {wk} weeks, arrest of dilation", f"宫内妊娠{wk}周，活跃期停滞"))
    post = T("Same, delivered", "同术前诊断，已分娩")
    return dict(pre=pre, post=post,
                proc=T("Repeat low transverse cesarean section" if repeat else "Primary low transverse cesarean section",
                       "子宫下段横切口剖宫产术（再次）" if repeat else "子宫下段横切口剖宫产术"),
                anes=c.ch("spinal", "cse"),
                find=T(f"Viable {sex_en} infant, weight {g} g, Apgar scores {a1} and {a2}; normal uterus, tubes and ovaries",
                       f"娩出一活{sex_zh}婴，体重{g} g，Apgar评分{a1}分、{a2}分；子宫及双侧附件未见异常"),
                ebl=r.randint(550, 950), steps=T("Pfannenstiel incision. Low transverse hysterotomy; the infant was delivered from vertex. Hysterotomy closed in two layers.",
                                                 "耻骨上横切口，子宫下段横切口，头位娩出胎儿，子宫切口双层缝合。"),
                spec=T("Placenta to pathology", "胎盘送病理") if c.chance(0.3) else T("None", "无"), drain=T("None", "无"), comp=None, female=True, young=True)


def op_ctr(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    s_en, s_zh = side(c)
    return dict(pre=T(f"{cap(s_en)} carpal tunnel syndrome", f"{s_zh}侧腕管综合征"), post=None,
                proc=T(f"{cap(s_en)} open carpal tunnel release", f"{s_zh}侧腕管切开减压术"), anes="mac",
                find=T("Thickened transverse carpal ligament; median nerve flattened with an hourglass constriction", "腕横韧带增厚，正中神经受压变扁呈沙漏样"),
                ebl=r.randint(2, 5), steps=T("Longitudinal palmar incision. The transverse carpal ligament was divided completely under direct vision.",
                                             "掌部纵切口，直视下完全切开腕横韧带。"),
                spec=T("None", "无"), drain=T("None", "无"), comp=None)


def op_hip(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    s_en, s_zh = side(c)
    head = r.randint(44, 52)
    return dict(pre=T(f"Displaced {s_en} femoral neck fracture", f"{s_zh}股骨颈骨折（移位）"), post=None,
                proc=T(f"{cap(s_en)} hip hemiarthroplasty, cemented bipolar", f"{s_zh}侧人工股骨头置换术（骨水泥型双动头）"), anes="spinal",
                find=T(f"Displaced subcapital fracture; femoral head {head} mm; stable hip through full range of motion",
                       f"股骨头下型骨折移位，股骨头直径{head} mm；置换后关节全范围活动稳定"),
                ebl=r.randint(150, 400), steps=T("Posterior approach. The femoral head was removed and a cemented stem with a bipolar head implanted; the capsule was repaired.",
                                                 "后外侧入路，取出股骨头，骨水泥固定股骨柄并安装双动头，修复关节囊。"),
                spec=T("Femoral head to pathology", "股骨头送病理"), drain=T("None", "无"), comp=None, old=True)


def op_menisc(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    s_en, s_zh = side(c)
    return dict(pre=T(f"{cap(s_en)} knee medial meniscus tear", f"{s_zh}膝内侧半月板撕裂"),
                post=T(f"Complex tear of the posterior horn of the {s_en} medial meniscus; grade 2 chondromalacia of the medial femoral condyle",
                       f"{s_zh}膝内侧半月板后角复合撕裂；股骨内髁软骨软化2级"),
                proc=T(f"{cap(s_en)} knee arthroscopy with partial medial meniscectomy", f"{s_zh}膝关节镜下内侧半月板部分切除术"), anes="lma",
                find=T("Complex posterior horn medial meniscus tear; grade 2 chondromalacia of the medial femoral condyle; ACL and PCL intact; lateral compartment normal",
                       "内侧半月板后角复合撕裂；股骨内髁软骨软化2级；前后交叉韧带完整；外侧间室正常"),
                ebl=r.randint(2, 10), steps=T("Standard anteromedial and anterolateral portals. The torn meniscus was debrided to a stable rim.",
                                              "标准前内、前外侧入路，切除撕裂半月板至边缘稳定。"),
                spec=T("None", "无"), drain=T("None", "无"), comp=None)


def op_thyroid(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    s_en, s_zh = side(c)
    cm = num(r, 1.6, 3.8, 1)
    return dict(pre=T(f"{cap(s_en)} thyroid nodule with indeterminate cytology", f"{s_zh}侧甲状腺结节（细胞学不确定）"), post=None,
                proc=T(f"{cap(s_en)} thyroid lobectomy", f"{s_zh}侧甲状腺腺叶切除术"), anes="geta",
                find=T(f"Firm {cm} cm nodule in the {s_en} lobe; recurrent laryngeal nerve identified and preserved; two parathyroid glands preserved",
                       f"{s_zh}叶质硬结节约{cm} cm；喉返神经显露并保护；保留2枚甲状旁腺"),
                ebl=r.randint(10, 40), steps=T("Low collar incision. The recurrent laryngeal nerve was traced and the lobe removed with the isthmus.",
                                               "颈前低位弧形切口，显露喉返神经，切除腺叶及峡部。"),
                spec=T(f"{cap(s_en)} thyroid lobe and isthmus", f"{s_zh}侧甲状腺腺叶及峡部"), drain=T("None", "无"), comp=None)


OP_CASES = [op_appy, op_appy, op_chole, op_chole, op_hernia, op_tka, op_radius, op_csection, op_ctr, op_hip, op_menisc, op_thyroid]


def make_operative_note(c: Ctx) -> tuple[str, str]:
    r, T = c.r, c.T
    case = r.choice(OP_CASES)
    k = case(c, None)
    sex = "F" if k.get("female") else ("M" if k.get("male") and c.chance(0.85) else None)
    lo, hi = (60, 88) if k.get("old") else ((22, 40) if k.get("young") else (18, 80))
    p = Person(c, lo=lo, hi=hi, sex=sex)
    anes = ANES[k["anes"]]
    if k["anes"] == "mac":
        anes = (f"MAC/local ({c.ch('1%', '2%')} lidocaine)", anes[1], anes[2])
        anes = (anes[0], anes[1] + f" ({anes[0].split('(')[1].rstrip(')')})", anes[2] + f"（{anes[0].split('(')[1].split()[0]}利多卡因）")
    surgeon, asst, anesth = c.doctor(), c.doctor(), c.doctor()
    ebl = k["ebl"]
    if ebl > 50:
        ebl = int(round(ebl / 50.0) * 50)
    elif ebl >= 10:
        ebl = int(round(ebl / 5.0) * 5)
    post = k["post"]
    comp_n = k["comp"] or c.ch(T("None", "无"), T("none apparent", "无"), T("No complications", "无并发症"))
    comp_t = (k["comp"] + T(".", "。")) if k["comp"] else T("None.", "无。")
    unit = c.ch("mL", "cc") if not c.zh else "mL"
    ebl_n = (T("minimal", "少量") + f" (<{ebl} {unit})") if ebl <= 5 else f"{ebl} {unit}"
    ebl_t = T(f"Minimal (less than {ebl} mL).", f"少量（<{ebl} mL）。") if ebl <= 5 else f"{ebl} mL" + T(".", "。")
    fmt = r.randrange(3)
    pre_n, post_n = k["pre"], post
    if c.zh:
        sexw = "男" if p.sex == "M" else "女"
        head = f"{c.hospital()}\n手术记录\n姓名：{p.name}  性别：{sexw}  年龄：{p.age}岁  住院号：{p.mrn}\n手术日期：{c.date(p.visit)}"
        staff = f"术者：{surgeon}  助手：{asst}  麻醉医师：{anesth}"
        if fmt == 0:
            body = (f"患者因“{pre_n}”入院，完善术前检查后于{anes[2]}下行{k['proc']}。{k['steps']}术中见：{k['find']}。"
                    + (f"术后诊断：{post_n}。" if post_n else "") + f"术中出血{ebl_n}，并发症：{comp_n}。标本：{k['spec']}。引流：{k['drain']}。术毕安返病房。")
        else:
            body = "\n".join([f"术前诊断：{pre_n}", f"术后诊断：{post_n or '同术前'}", f"手术：{k['proc']}", f"麻醉：{anes[2]}",
                              f"手术经过：{k['steps']}", f"术中所见：{k['find']}。", f"术中出血：{ebl_n}", f"并发症：{comp_n}",
                              f"标本：{k['spec']}", f"引流：{k['drain']}"])
        note = assemble(c, [(head, False), (staff, True), (body, False)])
    else:
        head = c.ch(f"OPERATIVE REPORT\nPatient: {p.name}   MRN: {p.mrn}   DOB: {p.dob()}\nDate of surgery: {c.date(p.visit)}",
                    f"{c.hospital()} - Brief op note {c.date(p.visit)}\n{p.name}, {p.age}{p.mf()}, MRN {p.mrn}",
                    f"Intraoperative record - {p.name} ({p.mrn}) - {c.date(p.visit)}")
        staff = f"Surgeon: {surgeon}. Assistant: {asst}. Anesthesia: {anesth}."
        if fmt == 0:
            he = p.he()
            body = (f"Indication: {p.age}-year-old {p.noun()} with {pre_n[0].lower() + pre_n[1:]}. "
                    f"After informed consent {he.lower()} was taken to the operating room and placed under {anes[0]}. " if k["anes"] != "mac" else
                    f"Indication: {p.age}-year-old {p.noun()} with {pre_n[0].lower() + pre_n[1:]}. After informed consent, {anes[0]} was used. ")
            body += f"{k['steps']} Findings: {k['find']}. "
            if post_n:
                body += f"Postoperative diagnosis: {post_n[0].lower() + post_n[1:]}. "
            body += f"EBL {ebl_n}. Complications: {comp_n}. Specimen: {k['spec'].lower() if k['spec'] != 'None' else 'none'}. Drains: {k['drain'].lower() if k['drain'] == 'None' else k['drain']}. "
            body += c.ch("Counts correct x2. To PACU in stable condition.", "Sponge and needle counts correct. Extubated and taken to recovery in stable condition."
                         if k["anes"] in ("geta", "lma") else "Counts correct. To recovery, stable.")
        elif fmt == 1:
            body = "\n".join([f"Pre-op dx: {pre_n}", f"Post-op dx: {post_n or 'same'}", f"Op: {k['proc']}", f"Anes: {anes[0]}",
                              f"Findings: {k['find']}", f"EBL: {ebl_n}", f"Compl: {comp_n}", f"Specimens: {k['spec']}",
                              f"Drains: {k['drain']}", "Dispo: " + c.ch("PACU, stable", "recovery room in good condition")])
        else:
            t0 = r.randint(7, 14)
            m0 = r.randint(0, 50)
            body = "\n".join([f"Time in room {t0:02d}:{m0:02d}. Anesthesia: {anes[0]} ({anesth}).",
                              f"Procedure: {k['proc']} for {pre_n[0].lower() + pre_n[1:]}.", f"Operative course: {k['steps']}",
                              f"Surgeon's findings: {k['find']}." + (f" Final diagnosis {post_n[0].lower() + post_n[1:]}." if post_n else ""),
                              f"Blood loss {ebl_n}. Complications: {comp_n}. Specimen(s): {k['spec']}. Drains: {k['drain']}."])
        note = assemble(c, [(head, False), (staff, fmt != 2), (body, False)])
    if post:
        post_t = post + T(".", "。")
    else:
        post_t = T(f"Same ({k['pre'][0].lower() + k['pre'][1:]}).", "同术前诊断。")
    tgt = draft(c, "operative_note", [k["pre"] + T(".", "。"), post_t, k["proc"] + T(".", "。"), anes[1] + T(".", "。") if not c.zh else anes[2] + "。",
                                      k["find"] + T(".", "。"), ebl_t, comp_t])
    return note, tgt


# =============================================================================================
# patient_explanation: a clinician's note in jargon -> plain-language explanation.


def pe_htn(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    b1, b2 = f"{r.randint(150, 168)}/{r.randint(92, 102)}", f"{r.randint(148, 166)}/{r.randint(90, 100)}"
    m = Med(c, "amlodipine", dose="5 mg")
    wk = c.ch(2, 4)
    return dict(
        note=[T(f"BP {b1} today, {b2} at last visit. BMP and UA wnl. No end-organ sx.", f"今日血压{b1} mmHg，上次{b2} mmHg。电解质、肾功能及尿常规正常。无靶器官损害症状。"),
              T("A/P: Stage 2 HTN.", "诊断：高血压2级。"),
              T(f"Start {m.s('abbr')}. DASH diet, Na <2 g daily, limit EtOH. Home BP log.", f"处理：{m.s()}；低盐饮食（每日钠<2 g），限酒；家庭血压监测。"),
              T(f"RTC {wk} wks.", f"{wk}周后复诊。")],
        found=[T(f"Your blood pressure was high at two visits: {b1} today and {b2} last time.", f"您两次测的血压都偏高：今天{b1}，上次{b2}。"),
               T("Your blood and urine tests were normal.", "您的血液和尿液检查都正常。"),
               T("You have high blood pressure that needs treatment.", "您有高血压，需要治疗。")],
        next=[T("Take amlodipine 5 mg once a day.", "每天吃1次氨氯地平，每次5 mg。"),
              T("Eat less salt, less than 2 g of sodium a day, and drink less alcohol.", "少吃盐，每天钠少于2 g，少喝酒。"),
              T("Check your blood pressure at home and write it down.", "在家量血压并记下来。"),
              T(f"Come back in {wk} weeks.", f"{wk}周后回来复诊。")],
        title=T("Primary care visit", "门诊病历"))


def pe_dm(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    a1c, fpg = num(r, 6.8, 8.9, 1), r.randint(134, 190)
    m = Med(c, "metformin", dose="500 mg", freq="bid")
    return dict(
        note=[T(f"HbA1c {a1c}%, FPG {fpg} mg/dL. BMI {num(r, 29, 36, 1)}.", f"糖化血红蛋白{a1c}%，空腹血糖{fpg} mg/dL。"),
              T("A/P: New dx T2DM.", "诊断：2型糖尿病（新诊断）。"),
              T(f"Start {m.s('abbr')} with meals; counseled re GI upset.", f"处理：{m.s()}，随餐服用；已告知可能有胃肠道不适。"),
              T("Refer to nutrition. Dilated eye exam. Repeat A1c in 3 mo.", "营养科会诊，眼底检查，3个月后复查糖化血红蛋白。")],
        found=[T(f"Your long-term blood sugar test (A1c) was {a1c}%, and your fasting sugar was {fpg}.", f"您的糖化血红蛋白是{a1c}%，空腹血糖是{fpg}。"),
               T("This means you have type 2 diabetes.", "这说明您得了2型糖尿病。")],
        next=[T("Take metformin 500 mg twice a day with meals.", "每天吃2次二甲双胍，每次500 mg，随饭吃。"),
              T("It can upset your stomach at first.", "刚开始吃可能会有点胃不舒服。"),
              T("See a dietitian and get an eye exam.", "去看营养师，并检查眼睛。"),
              T("We will check your A1c again in 3 months.", "3个月后再查一次糖化血红蛋白。")],
        title=T("Clinic follow-up", "门诊病历"))


def pe_ida(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    hb, ferr = num(r, 8.4, 10.8, 1), r.randint(3, 11)
    m = Med(c, "ferrous")
    wk = c.ch(6, 8)
    return dict(
        note=[T(f"Hgb {hb} g/dL, MCV {r.randint(68, 77)}, ferritin {ferr} ng/mL.", f"血红蛋白{hb} g/dL，铁蛋白{ferr} ng/mL。"),
              T("A/P: Iron deficiency anemia.", "诊断：缺铁性贫血。"),
              T(f"Start {m.s('abbr')}; take with vit C, separate from antacids by 2 h. May cause dark stools/constipation.",
                f"处理：{m.s()}，与维生素C同服，与抑酸药间隔2小时；可有黑便、便秘。"),
              T(f"GI referral for colonoscopy. Repeat CBC in {wk} wks.", f"转消化科行结肠镜检查。{wk}周后复查血常规。")],
        found=[T(f"Your blood count is low (hemoglobin {hb}) because your body is low on iron.", f"您的血红蛋白偏低（{hb}），原因是体内缺铁。"),
               T(f"Your iron stores (ferritin) were {ferr}, which is low.", f"您的铁蛋白是{ferr}，偏低。")],
        next=[T("Take one iron tablet (ferrous sulfate 325 mg) each day with vitamin C, like orange juice.", "每天吃1次硫酸亚铁，和维生素C一起吃。"),
              T("Do not take it within 2 hours of antacids.", "和抑酸药要隔开2小时。"),
              T("Your stools may turn dark and you may get constipated. This is expected.", "大便可能会变黑，也可能便秘，这是正常的。"),
              T("You will be referred for a colonoscopy, a camera test of the bowel.", "您需要做肠镜检查。"),
              T(f"We will recheck your blood in {wk} weeks.", f"{wk}周后复查血常规。")],
        title=T("Results note", "门诊病历"))


def pe_stone(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    s_en, s_zh = side(c)
    mm = r.randint(3, 6)
    tam, ibu = Med(c, "tamsulosin", freq="daily", extra=("x 2 wks", "for 2 weeks", "共2周")), Med(c, "ibuprofen", dose="600 mg", freq="q8h_prn")
    return dict(
        note=[T(f"CT A/P: {mm} mm {s_en[0].upper()} UVJ stone with mild hydronephrosis. UA without signs of infection. Pain controlled with ketorolac in ED.",
                f"CT：{s_zh}侧输尿管膀胱连接处结石{mm} mm，伴轻度肾积水。尿常规无感染征象。急诊予酮咯酸止痛后缓解。"),
              T("Dx: ureterolithiasis.", "诊断：输尿管结石。"),
              T(f"D/c on {tam.s('abbr')}, {ibu.s('abbr')}. Strain urine, push PO fluids.", f"出院带药：{tam.s()}；{ibu.s()}。过滤尿液，多饮水。"),
              T("Urology f/u 1 wk. RTED for fever, intractable vomiting or uncontrolled pain.", "1周后泌尿外科复诊。如发热、呕吐不止或疼痛无法控制，立即返回急诊。")],
        found=[T(f"You have a small kidney stone, {mm} mm, stuck near where the tube from the {s_en} kidney enters the bladder.",
                 f"您{s_zh}边的输尿管下端有一颗小结石，大小{mm} mm。"),
               T("It is causing some swelling of that kidney. Your urine showed no infection.", "它让肾脏有点积水。尿检没有感染。")],
        next=[T("Take tamsulosin 0.4 mg once a day for 2 weeks to help the stone pass.", "每天吃1次坦索罗辛（0.4 mg），连吃2周，帮助排石。"),
              T("Take ibuprofen 600 mg every 8 hours if you need it for pain.", "疼的时候吃布洛芬600 mg，每8小时最多1次。"),
              T("Drink plenty of fluids and pee through a strainer to catch the stone.", "多喝水，用滤网接尿，留住排出的结石。"),
              T("See the urologist in 1 week.", "1周后看泌尿外科。"),
              T("Come back to the emergency room for fever, vomiting that won't stop, or pain you cannot control.", "如果发烧、吐个不停或疼得受不了，马上回急诊。")],
        title=T("ED discharge note", "急诊病历"))


def pe_thyroid(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    tsh, ft4 = num(r, 9.0, 28.0, 1), num(r, 0.4, 0.7, 2)
    wk = c.ch(6, 8)
    return dict(
        note=[T(f"TSH {tsh} mIU/L, FT4 {ft4} ng/dL. Sx: fatigue, cold intolerance.", f"TSH {tsh} mIU/L，游离T4 {ft4} ng/dL。症状：乏力、怕冷。"),
              T("A/P: Primary hypothyroidism.", "诊断：原发性甲状腺功能减退症。"),
              T("Start levothyroxine 50 mcg PO qAM on an empty stomach, 30-60 min before breakfast.", "处理：左甲状腺素50 mcg，每日晨起空腹口服，早餐前30-60分钟。"),
              T(f"Recheck TSH in {wk} wks.", f"{wk}周后复查TSH。")],
        found=[T("Your thyroid gland is not making enough hormone.", "您的甲状腺激素分泌不足。"),
               T(f"Your TSH test was high at {tsh}. This explains your tiredness and feeling cold.", f"您的TSH偏高，是{tsh}，这可以解释您乏力、怕冷。")],
        next=[T("Take levothyroxine 50 mcg every morning on an empty stomach.", "每天早上空腹吃左甲状腺素50 mcg。"),
              T("Wait 30 to 60 minutes before you eat breakfast.", "吃药后等30到60分钟再吃早饭。"),
              T(f"We will check your thyroid blood test again in {wk} weeks.", f"{wk}周后复查甲状腺功能。")],
        title=T("Clinic note", "门诊病历"))


def pe_gallstones(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    h = c.ch(4, 6)
    cm = num(r, 0.6, 2.6, 1)
    return dict(
        note=[T(f"RUQ US: cholelithiasis, largest stone {cm} cm; no GB wall thickening or pericholecystic fluid. LFTs wnl.",
                f"腹部超声：胆囊结石，最大{cm} cm，胆囊壁无增厚，无胆囊周围积液。肝功能正常。"),
              T("A/P: Symptomatic cholelithiasis (biliary colic).", "诊断：症状性胆囊结石（胆绞痛）。"),
              T("Refer to general surgery for elective lap chole. Low-fat diet.", "处理：转普外科择期行腹腔镜胆囊切除术；低脂饮食。"),
              T(f"RTED if fever, jaundice, or pain lasting >{h} h.", f"如发热、黄疸或疼痛持续超过{h}小时，立即急诊就诊。")],
        found=[T(f"You have gallstones; the biggest is {cm} cm. They are causing your attacks of belly pain after meals.",
                 f"您有胆结石，最大的有{cm} cm，饭后肚子疼就是它引起的。"),
               T("There is no sign of infection in the gallbladder, and your liver tests are normal.", "胆囊没有发炎的迹象，肝功能正常。")],
        next=[T("You will see a surgeon to plan an operation to remove the gallbladder.", "您需要看外科医生，安排手术切除胆囊。"),
              T("Eat less fatty food.", "少吃油腻的食物。"),
              T(f"Go to the emergency room if you get a fever, yellow skin or eyes, or pain that lasts more than {h} hours.",
                f"如果发烧、皮肤或眼睛发黄，或者疼痛超过{h}小时，请马上去急诊。")],
        title=T("Clinic note", "门诊病历"))


def pe_sprain(c: Ctx, p: Person) -> dict:
    T = c.T
    s_en, s_zh = side(c)
    nd, fw = c.ch(5, 7, 10), c.ch(1, 2)
    ibu = Med(c, "ibuprofen", dose=c.ch("400 mg", "600 mg"), freq="tid", extra=(f"x {nd} days", f"for {nd} days", f"共{nd}天"))
    return dict(
        note=[T(f"XR {s_en[0].upper()} ankle: no fx.", f"{s_zh}踝X线：未见骨折。"),
              T(f"Dx: {s_en[0].upper()} lateral ankle sprain, grade 1-2.", f"诊断：{s_zh}踝外侧韧带扭伤（1-2级）。"),
              T(f"RICE, ASO brace, WBAT. {ibu.s('abbr')} w/ food.", f"处理：休息、冰敷、加压、抬高；佩戴护踝，可耐受下负重；{ibu.s()}，饭后服。"),
              T(f"F/u sports medicine in {fw} wk{'s' if fw > 1 else ''} if not improving.", f"{fw}周后如无好转，运动医学科复诊。")],
        found=[c.ch(T(f"You sprained your {s_en} ankle. The X-ray showed no broken bone.", f"您的{s_zh}脚踝扭伤了，X光片没有骨折。"),
                    T(f"You have a sprain of the {s_en} ankle: the ligaments on the outside were stretched. Your X-ray showed no fracture.",
                      f"您{s_zh}脚踝外侧的韧带拉伤了，X光片没有看到骨折。"))],
        next=[T("Rest, put ice on it, wrap it, and keep it raised.", "多休息，冰敷，用弹力绷带包扎，把脚垫高。"),
              T("Wear the brace. You can walk on it as much as the pain allows.", "戴好护踝，不太疼的话可以下地走。"),
              T(f"Take ibuprofen {ibu.dose} three times a day with food for {nd} days.", f"布洛芬{ibu.dose}，每天3次，饭后吃，连吃{nd}天。"),
              T(f"See the sports medicine doctor in {fw} week{'s' if fw > 1 else ''} if it is not getting better.", f"如果{fw}周后还没好转，请看运动医学科。")],
        title=T("Urgent care note", "急诊病历"))


def pe_uti(c: Ctx, p: Person) -> dict:
    T = c.T
    m = Med(c, "nitrofurantoin", extra=("x 5 days", "for 5 days", "共5天"))
    return dict(
        note=[T("UA: +LE, +nitrite, WBC 20-50/hpf. Afebrile, no CVA tenderness.", "尿常规：白细胞酯酶阳性，亚硝酸盐阳性，白细胞20-50/HP。无发热，肾区无叩痛。"),
              T("Dx: acute uncomplicated cystitis.", "诊断：急性单纯性膀胱炎。"),
              T(f"{m.s('abbr')}. Increase fluids.", f"处理：{m.s()}；多饮水。"),
              T("Return if fever, flank pain or no improvement in 48 h.", "如发热、腰痛或48小时无好转，及时复诊。")],
        found=[T("You have a bladder infection. Your urine test showed signs of infection.", "您得了膀胱炎，尿检显示有感染。"),
               T("You have no fever and your kidneys do not seem to be involved.", "您没有发烧，肾脏看起来没有受累。")],
        next=[T("Take nitrofurantoin 100 mg twice a day for 5 days.", "呋喃妥因100 mg，每天2次，吃5天。"),
              T("Drink more fluids.", "多喝水。"),
              T("Come back if you get a fever, pain in your side or back, or you are not better in 48 hours.", "如果发烧、腰痛，或48小时后没有好转，请再来看病。")],
        title=T("Clinic note", "门诊病历"))


def pe_lipids(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    ldl, risk = r.randint(162, 198), num(r, 8.0, 16.0, 1)
    wk = c.ch(8, 12)
    return dict(
        note=[T(f"Lipids: LDL {ldl} mg/dL, HDL {r.randint(36, 55)}, TG {r.randint(140, 260)}. 10-yr ASCVD risk {risk}%.",
                f"血脂：LDL {ldl} mg/dL。10年动脉粥样硬化性心血管病风险{risk}%。"),
              T("A/P: Hyperlipidemia.", "诊断：高脂血症。"),
              T("Start atorvastatin 20 mg PO qhs. Diet/exercise counseling.", "处理：阿托伐他汀20 mg，每晚口服；饮食及运动指导。"),
              T(f"Repeat lipid panel and LFTs in {wk} wks.", f"{wk}周后复查血脂及肝功能。")],
        found=[T(f"Your LDL (\"bad\") cholesterol is high at {ldl}.", f"您的“坏”胆固醇（LDL）偏高，是{ldl}。"),
               T(f"Your chance of a heart attack or stroke in the next 10 years is about {risk}%.", f"您未来10年发生心梗或中风的风险约为{risk}%。")],
        next=[T("Take atorvastatin 20 mg every night at bedtime.", "每晚睡前吃阿托伐他汀20 mg。"),
              T("Eat a heart-healthy diet and exercise regularly.", "注意健康饮食，规律运动。"),
              T(f"We will recheck your cholesterol and liver tests in {wk} weeks.", f"{wk}周后复查血脂和肝功能。")],
        title=T("Results note", "门诊病历"))


def pe_afib(c: Ctx, p: Person) -> dict:
    r, T = c.r, c.T
    score = r.randint(2, 5)
    mdose = c.ch("25 mg", "50 mg")
    return dict(
        note=[T(f"ECG: AF, rate {r.randint(82, 104)}. CHA2DS2-VASc {score}.", f"心电图：心房颤动，心室率{r.randint(82, 104)}次/分。CHA2DS2-VASc评分{score}分。"),
              T("A/P: New-onset atrial fibrillation, rate controlled.", "诊断：新发心房颤动，心室率控制尚可。"),
              T(f"Start apixaban 5 mg PO BID and metoprolol succinate {mdose} PO daily. TTE ordered. Bleeding precautions reviewed.",
                f"处理：阿哌沙班5 mg，每日2次；琥珀酸美托洛尔{mdose}，每日1次。预约心脏超声。已告知出血注意事项。"),
              T("Cardiology referral.", "转心内科。")],
        found=[T("Your heart has an irregular rhythm called atrial fibrillation.", "您的心跳不规律，这叫心房颤动（房颤）。"),
               c.ch(T("It raises the risk of a stroke from blood clots.", "房颤会增加血栓导致中风的风险。"),
                    T(f"Your stroke risk score is {score}, which is high enough that you need a blood thinner.", f"您的中风风险评分是{score}分，需要吃抗凝药。"))],
        next=[T("Take apixaban 5 mg twice a day to prevent clots.", "每天吃2次阿哌沙班，每次5 mg，预防血栓。"),
              T(f"Take metoprolol {mdose} once a day to slow your heart.", f"每天吃1次美托洛尔{mdose}，让心跳慢下来。"),
              T("Tell us about any unusual bleeding, such as black stools or blood in your urine.", "如果有异常出血，比如黑便或尿血，请告诉我们。"),
              T("You will have a heart ultrasound and see a heart specialist.", "您需要做心脏超声，并看心内科医生。")],
        title=T("Clinic note", "门诊病历"))


def pe_concussion(c: Ctx, p: Person) -> dict:
    T = c.T
    how_en, how_zh = c.ch(("fall from a bike", "骑自行车摔倒"), ("fall on ice", "冰面滑倒"), ("head strike during soccer", "踢球时头部撞击"),
                          ("low-speed car accident", "低速车祸"))
    hrs = c.ch("24-48", "48")
    loc = c.chance(0.3)
    hrs_words = T("24 to 48 hours" if hrs == "24-48" else "48 hours", "24到48小时" if hrs == "24-48" else "48小时")
    return dict(
        note=[T(f"Mechanism: {how_en}" + (", brief LOC." if loc else ", no LOC."), f"受伤经过：{how_zh}" + ("，短暂意识丧失。" if loc else "，无意识丧失。")),
              T("Head CT: no acute intracranial abnormality. GCS 15, nonfocal neuro exam.", "头颅CT：未见急性颅内病变。GCS 15分，神经系统查体无定位体征。"),
              T("Dx: concussion (mild TBI).", "诊断：脑震荡（轻型颅脑损伤）。"),
              T(f"Relative cognitive/physical rest x {hrs} h, then graded return. No contact sports until cleared. Acetaminophen PRN headache.",
                f"处理：{hrs}小时内减少用脑及体力活动，之后逐步恢复；未经医生允许不得参加对抗性运动；头痛时可服对乙酰氨基酚。"),
              T("RTED for worsening headache, repeated vomiting, confusion or weakness.", "如头痛加重、反复呕吐、意识模糊或肢体无力，立即返回急诊。")],
        found=[c.ch(T("You have a concussion, a mild brain injury from the blow to your head.", "您有脑震荡，是头部受撞击后的轻度脑损伤。"),
                    T(f"The {how_en} gave you a concussion, which is a mild brain injury.", f"{how_zh}导致了脑震荡，这是一种轻度脑损伤。")),
               T("Your head scan showed no bleeding or other serious injury.", "头部CT没有出血或其他严重损伤。")]
        + ([T("You passed out for a short time when it happened.", "受伤时您短暂昏迷过。")] if loc else []),
        next=[T(f"Rest your body and brain for {hrs_words}, then slowly go back to normal activities.", f"{hrs_words}内多休息，少用脑，然后慢慢恢复日常活动。"),
              T("Do not play contact sports until a doctor says it is safe.", "在医生同意之前，不要参加对抗性运动。"),
              T("You can take acetaminophen for headaches.", "头痛时可以吃对乙酰氨基酚。"),
              T("Come back right away for a worse headache, repeated vomiting, confusion or weakness.", "如果头痛加重、反复呕吐、糊涂或没力气，马上回急诊。")],
        title=T("ED discharge note", "急诊病历"))


PE_CASES = [pe_htn, pe_dm, pe_ida, pe_stone, pe_thyroid, pe_gallstones, pe_sprain, pe_uti, pe_lipids, pe_afib, pe_concussion]


def make_patient_explanation(c: Ctx) -> tuple[str, str]:
    r = c.r
    case = r.choice(PE_CASES)
    p = Person(c, lo=18 if case in (pe_sprain, pe_concussion) else 35, hi=84, sex="F" if case is pe_uti else None)
    k = case(c, p)
    doc = c.doctor()
    if c.zh:
        sexw = "男" if p.sex == "M" else "女"
        head = c.ch(f"{k['title']}\n姓名：{p.name}  性别：{sexw}  年龄：{p.age}岁  病历号：{p.mrn}  就诊日期：{c.date(p.visit)}",
                    f"{c.hospital()} {k['title']}\n{p.name}，{sexw}，{p.age}岁，电话{p.phone}，{c.date(p.visit)}")
        extra = r.sample(["过敏史：无。", "已向患者解释病情，患者表示理解。", "患者同意上述治疗方案。"], r.randint(1, 2))
        note = assemble(c, [(head, False), ("\n".join(k["note"] + extra), False), (f"医师：{doc}", True)])
    else:
        head = c.ch(f"{k['title']} - {c.date(p.visit)}\nPt: {p.name}  DOB {p.dob()}  MRN {p.mrn}",
                    f"{c.hospital()}\n{k['title'].upper()}\n{p.name} | {p.age}{p.mf()} | MRN {p.mrn} | {c.date(p.visit)}",
                    f"{p.name}, {p.age} y/o {'M' if p.sex == 'M' else 'F'} ({p.mrn}) - {k['title'].lower()}, {c.date(p.visit)}\nPhone: {p.phone}")
        v = vitals(c, sbp=(118, 138)) if case is not pe_htn else None
        lines = list(k["note"])
        if v:
            lines.insert(0, "Vitals: " + vit_str(c, v, 0, ("t", "hr", "bp", "spo2")) + ".")
        extra = r.sample(["Allergies: NKDA.", "Allergies: penicillin (hives).", "Pt counseled, verbalized understanding.",
                          "Questions answered; pt agrees with plan.", "Interpreter not needed.",
                          f"PCP: {c.doctor()}."], r.randint(1, 3))
        body = "\n".join(lines + extra) if c.chance(0.6) else " ".join(lines + extra)
        note = assemble(c, [(head, False), (body, False), (f"- {doc}" if c.chance(0.5) else f"Electronically signed by {doc}", True)])
    found = " ".join(k["found"]) if not c.zh else "".join(k["found"])
    tgt = draft(c, "patient_explanation", [found, bullets(k["next"])])
    return note, tgt


# =============================================================================================
# question_summary: a patient's message -> one short question.


def qs_topics(c: Ctx, p: Person) -> list[dict]:
    r, T = c.r, c.T
    d1 = c.ch("10 mg", "20 mg", "40 mg")
    n_days = r.randint(3, 12)
    tsh = num(r, 4.8, 8.9, 1)
    pred = c.ch("10 mg", "20 mg")
    sert = c.ch("50 mg", "100 mg")
    kg = r.randint(12, 24)
    yrs = r.randint(2, 6)
    bp = f"{r.randint(168, 186)}/{r.randint(96, 112)}"
    amlo = c.ch("5 mg", "10 mg")
    lev = c.ch("50", "75", "100")
    ator = c.ch("20 mg", "40 mg")
    return [
        dict(ctx=[T("I hurt my back moving furniture this weekend and it's really sore.", "周末搬家具把腰扭了，很疼。"),
                  T(f"I take lisinopril {d1} every morning for my blood pressure.", f"我每天早上吃赖诺普利{d1}降压。"),
                  T("My neighbor said ibuprofen works great but I read something about NSAIDs and blood pressure pills.", "邻居说布洛芬很管用，但我看到说止痛药和降压药一起吃不好。")],
             q=[T("Is it okay to take ibuprofen with my lisinopril?", "我能和赖诺普利一起吃布洛芬吗？"),
                T("Can I take Advil for a few days or should I use something else?", "能吃几天布洛芬吗？还是换别的药？")],
             s=[T(f"Can I take ibuprofen for back pain while taking lisinopril {d1}?", f"服用赖诺普利{d1}期间能否用布洛芬止腰痛？"),
                T(f"Is ibuprofen safe with lisinopril {d1}, or should I use a different pain reliever for my back?",
                  f"服用赖诺普利{d1}能否同时吃布洛芬，还是应换用其他止痛药？")],
             subj=T("back pain and lisinopril", "止痛药问题")),
        dict(ctx=[T(f"I forgot to take my levothyroxine {lev} mcg yesterday morning, I only realized tonight.", f"我昨天早上忘了吃左甲状腺素{lev} mcg，今晚才想起来。"),
                  T("I've been on it for about two years.", "这个药我吃了大概两年了。")],
             q=[T("Should I take two pills tomorrow to make up for it, or just skip it?", "明天要吃两片补上吗，还是直接跳过？")],
             s=[T("What should I do after missing a dose of levothyroxine: double up the next day or skip it?", "漏服一次左甲状腺素后，第二天应该加倍还是跳过？"),
                T(f"I missed a dose of levothyroxine {lev} mcg; should I take two tomorrow or skip it?", f"漏服左甲状腺素{lev} mcg，明天要吃两片还是跳过？")],
             subj=T("missed dose", "漏服药物")),
        dict(ctx=[T(f"I started lisinopril {d1} about {n_days} weeks ago.", f"我{n_days}周前开始吃赖诺普利{d1}。"),
                  T("For the last couple of weeks I've had a dry tickly cough that won't go away, especially at night. No fever or cold symptoms.",
                    "最近两周一直干咳，嗓子痒，晚上更明显，没有发烧也没有感冒症状。")],
             q=[T("Could the cough be from the blood pressure pill? Is there something else I could take instead?", "咳嗽会不会是降压药引起的？能换别的药吗？")],
             s=[T("Could lisinopril be causing my dry cough, and can I switch to another medicine?", "干咳是否由赖诺普利引起，能否换用其他降压药？"),
                T(f"Is my dry cough since starting lisinopril {d1} a side effect, and is there an alternative?", f"开始服用赖诺普利{d1}后出现干咳，是否为副作用，有无替代药物？")],
             subj=T("cough on new medication", "咳嗽")),
        dict(ctx=[T(f"I was started on metformin 500 mg twice a day {n_days} days ago.", f"我{n_days}天前开始吃二甲双胍，每次500 mg，每天2次。"),
                  T("Since then I've had loose stools and some cramping. I'm taking it on an empty stomach in the morning.", "之后一直拉稀、肚子有点绞痛。我是早上空腹吃的。")],
             q=[T("Is this normal? Will it go away, and would taking it with food help?", "这正常吗？会好吗？随饭吃会不会好一点？")],
             s=[T("Is diarrhea normal on metformin 500 mg, will it pass, and would taking it with food help?", "服用二甲双胍500 mg后腹泻是否正常，会否缓解，随餐服用是否有帮助？"),
                T(f"I have had loose stools and cramps since starting metformin {n_days} days ago; is that expected and should I take it with food?",
                  f"开始服用二甲双胍{n_days}天后腹泻、腹部绞痛，这是否正常，是否应随餐服用？")],
             subj=T("metformin side effects", "二甲双胍副作用")),
        dict(ctx=[T(f"I've been on atorvastatin {ator} for {n_days} weeks and my thighs and shoulders ache all the time.", f"我吃阿托伐他汀{ator}已经{n_days}周了，大腿和肩膀一直酸痛。"),
                  T("I haven't changed my exercise.", "我运动量没有变化。")],
             q=[T("Should I stop the atorvastatin? Do I need a blood test?", "要停阿托伐他汀吗？需要抽血检查吗？")],
             s=T(f"Should I stop atorvastatin {ator} because of muscle aches, and do I need a blood test?", f"服用阿托伐他汀{ator}后肌肉酸痛，是否需要停药并抽血检查？"),
             subj=T("muscle aches", "肌肉酸痛")),
        dict(ctx=[T(f"I had my gallbladder taken out laparoscopically {n_days} days ago and I'm feeling pretty good.", f"我{n_days}天前做了腹腔镜胆囊切除，现在感觉还不错。"),
                  T("I work at a warehouse and also want to get back to the gym.", "我在仓库上班，也想早点回健身房。")],
             q=[T("When can I lift heavy things again and go back to work?", "什么时候可以搬重物、回去上班？")],
             s=[T("When can I return to heavy lifting, work and the gym after laparoscopic gallbladder surgery?", "腹腔镜胆囊切除术后什么时候可以搬重物、上班和健身？"),
                T(f"How soon after my laparoscopic cholecystectomy {n_days} days ago can I lift heavy things and go back to work?",
                  f"{n_days}天前行腹腔镜胆囊切除术，多久后可以搬重物、回去上班？")],
             subj=T("return to work after surgery", "术后恢复")),
        dict(ctx=[T(f"My blood test came back and it says my TSH is {tsh}, flagged high.", f"化验结果出来了，TSH是{tsh}，标着偏高。"),
                  T("I feel a bit tired but otherwise fine. My mom has thyroid problems.", "我有点累，其他还好。我妈妈有甲状腺病。")],
             q=[T("What does this mean? Do I need to start medicine?", "这是什么意思？需要吃药吗？")],
             s=T(f"What does a TSH of {tsh} mean, and do I need thyroid medicine?", f"TSH {tsh}意味着什么，是否需要吃药？"),
             subj=T("lab result question", "化验结果")),
        dict(ctx=[T(f"I'm on prednisone {pred} a day for my arthritis.", f"我因为关节炎每天吃泼尼松{pred}。"),
                  T(f"The pharmacy is offering the shingles vaccine and I'm {p.age}.", f"药店在打带状疱疹疫苗，我今年{p.age}岁。")],
             q=[T("Is it safe to get the shingles shot while I'm on prednisone?", "吃泼尼松期间打带状疱疹疫苗安全吗？")],
             s=[T(f"Is the shingles vaccine safe while taking prednisone {pred} daily?", f"每日服用泼尼松{pred}期间接种带状疱疹疫苗是否安全？"),
                T(f"Can I get the shingles shot while on prednisone {pred} a day for arthritis?", f"因关节炎每日服用泼尼松{pred}，能否接种带状疱疹疫苗？")],
             subj=T("vaccine question", "疫苗咨询")),
        dict(ctx=[T(f"I take sertraline {sert} for anxiety and it has helped a lot.", f"我吃舍曲林{sert}治焦虑，效果很好。"),
                  T("My husband and I want to start trying for a baby.", "我和丈夫准备要孩子。")],
             q=[T("Is it safe to stay on it while trying to get pregnant, or should I come off it?", "备孕期间能继续吃吗？还是要停药？")],
             s=T(f"Can I keep taking sertraline {sert} while trying to get pregnant?", f"备孕期间能否继续服用舍曲林{sert}？"),
             subj=T("medication and pregnancy", "备孕用药")),
        dict(ctx=[T(f"My son is {yrs} years old and weighs {kg} kg.", f"我儿子{yrs}岁，体重{kg} kg。"),
                  T("He has had a fever since this afternoon and is a bit fussy but drinking fine.", "今天下午开始发烧，有点闹，但喝水还好。")],
             q=[T("How much children's acetaminophen can I give him, and how often?", "儿童对乙酰氨基酚能给他吃多少？多久吃一次？")],
             s=T(f"What dose of children's acetaminophen is safe for my {kg} kg child with fever, and how often?",
                 f"{kg} kg的发热儿童，儿童对乙酰氨基酚应该吃多少、多久一次？"),
             subj=T("fever in child", "孩子发烧")),
        dict(ctx=[T(f"I just checked my blood pressure at home and it was {bp}.", f"刚在家量血压{bp}。"),
                  T("I have a mild headache but no chest pain or trouble breathing. I took my amlodipine this morning.", "有点头疼，没有胸痛，也不喘。今早已经吃了氨氯地平。")],
             q=[T("Should I go to the ER or can I wait and recheck later?", "需要去急诊吗？还是过会儿再量？")],
             s=T(f"Should I go to the emergency room for a home blood pressure of {bp} with a mild headache?", f"在家血压{bp}伴轻微头痛，需要去急诊吗？"),
             subj=T("high blood pressure reading", "血压高")),
        dict(ctx=[T(f"Since starting amlodipine {amlo} my ankles swell up by the end of the day.", f"自从吃了氨氯地平{amlo}，每到傍晚脚踝就肿。"),
                  T("My blood pressure readings have been good though.", "不过血压控制得还不错。")],
             q=[T("Can I stop taking it, or is there another option?", "我能停药吗？有没有别的选择？")],
             s=T(f"Can I stop amlodipine {amlo} because of ankle swelling, or switch to another medicine?", f"服用氨氯地平{amlo}后脚踝水肿，能否停药或换药？"),
             subj=T("ankle swelling", "脚踝水肿")),
        dict(ctx=[T(f"I'm taking metronidazole for {n_days} days for an infection.", f"我因为感染在吃甲硝唑，要吃{n_days}天。"),
                  T("We have a wedding this weekend.", "这周末要参加婚礼。")],
             q=[T("Can I have a glass of wine at the wedding?", "婚礼上能喝一杯酒吗？")],
             s=[T("Can I drink alcohol while taking metronidazole?", "服用甲硝唑期间能否饮酒？"),
                T("Is it safe to have a glass of wine at a wedding while on metronidazole?", "服用甲硝唑期间在婚礼上喝一杯酒是否安全？")],
             subj=T("alcohol and antibiotics", "用药期间饮酒")),
        dict(ctx=[T(f"I take atorvastatin {ator} at night.", f"我每晚吃阿托伐他汀{ator}。"),
                  T("I love grapefruit juice in the morning and someone told me it interacts with some medicines.", "我早上喜欢喝西柚汁，有人说它会和某些药相互作用。")],
             q=[T("Do I need to stop drinking it?", "我需要不喝吗？")],
             s=T(f"Does grapefruit juice interact with atorvastatin {ator}, and should I stop drinking it?", f"西柚汁是否与阿托伐他汀{ator}相互作用，需要停喝吗？"),
             subj=T("food and medicine", "饮食与用药")),
        dict(ctx=[T(f"I was diagnosed with a blood clot in my leg {n_days} weeks ago and I'm taking apixaban 5 mg twice a day.",
                    f"我{n_days}周前查出腿上有血栓，现在吃阿哌沙班，每次5 mg，每天2次。"),
                  T(f"We have a family trip planned with a {r.randint(5, 11)} hour flight next month.", f"下个月全家要出去玩，要坐{r.randint(5, 11)}个小时的飞机。")],
             q=[T("Is it safe for me to fly, and is there anything I should do on the plane?", "我能坐飞机吗？飞机上要注意什么？")],
             s=[T("Is it safe to fly with a recent leg blood clot while on apixaban, and what precautions should I take?",
                  "近期下肢血栓、正在服用阿哌沙班，能否坐长途飞机，需要注意什么？")],
             subj=T("travel question", "出行咨询")),
        dict(ctx=[T(f"My colonoscopy is scheduled in {n_days} days.", f"我{n_days}天后要做肠镜。"),
                  T("I take clopidogrel 75 mg every day since my stent two years ago, and the prep instructions don't mention it.",
                    "两年前放了支架，一直每天吃氯吡格雷75 mg，肠镜准备说明里没提这个药。")],
             q=[T("Do I need to stop the clopidogrel before the procedure, and if so when?", "做肠镜前要停氯吡格雷吗？什么时候停？")],
             s=[T("Should I stop clopidogrel 75 mg before my colonoscopy, and when?", "肠镜检查前是否需要停用氯吡格雷75 mg，何时停？"),
                T(f"Do I need to hold my clopidogrel before the colonoscopy in {n_days} days?", f"{n_days}天后做肠镜，术前需要停氯吡格雷吗？")],
             subj=T("colonoscopy prep", "肠镜准备")),
        dict(ctx=[T(f"I pulled a tick off my thigh {n_days} days ago after hiking.", f"{n_days}天前爬山后从大腿上拔下一只蜱虫。"),
                  T("Now there's a red ring around the spot about the size of my palm, and I feel achy.", "现在那里出现一圈红斑，有手掌那么大，全身酸痛。")],
             q=[T("Do I need antibiotics or should I be seen?", "需要吃抗生素或者来看病吗？")],
             s=[T(f"Do I need antibiotics or a visit for a palm-sized red ring and body aches {n_days} days after a tick bite?", f"蜱虫叮咬{n_days}天后出现手掌大小的环形红斑和全身酸痛，需要抗生素或就诊吗？")],
             subj=T("tick bite", "蜱虫叮咬")),
        dict(ctx=[T("I have my flu shot appointment on Friday.", "我周五约了打流感疫苗。"),
                  T(f"The pharmacy also has the COVID booster and I'm {p.age}.", f"药店也能打新冠加强针，我今年{p.age}岁。")],
             q=[T("Can I get both shots on the same day, or should I space them out?", "两种疫苗能同一天打吗？还是要隔开？")],
             s=[T("Can I get the flu shot and the COVID booster on the same day?", "流感疫苗和新冠加强针能否同一天接种？"),
                T("Is it okay to get my flu vaccine and COVID booster together, or should they be spaced apart?", "流感疫苗和新冠加强针可以一起打吗，还是需要间隔？"),
                T(f"At {p.age}, can I have the COVID booster at the same visit as my flu shot?", f"{p.age}岁，能否在打流感疫苗时同时打新冠加强针？")],
             subj=T("vaccines", "疫苗")),
    ]


def make_question_summary(c: Ctx) -> tuple[str, str]:
    r = c.r
    p = Person(c, lo=22, hi=80)
    t = r.choice(qs_topics(c, p))
    ctx = list(t["ctx"])
    if c.chance(0.3) and len(ctx) > 1:
        ctx = ctx[1:] + ctx[:1]
    doc = c.doctor()
    q = r.choice(t["q"])
    first = p.name.split()[0] if not c.zh else p.name
    if c.zh:
        greet = c.ch(f"{doc}您好，", "医生您好！", "您好，", "")
        extra = c.ch("", "麻烦您了。", "谢谢！", "不好意思打扰您。")
        ctx = ctx + r.sample(["网上查了很多说法都不一样。", "药店的药师让我问问医生。", "离下次复诊还有一段时间。", "其他方面都还好。"], r.randint(0, 2))
        sig = c.ch(f"\n患者：{p.name}，电话{p.phone}", f"\n{p.name}", f"\n{p.name}（病历号{p.mrn}）", "")
        body = greet + "".join(ctx) + q + extra + sig
        if c.chance(0.4):
            body = f"主题：{t['subj']}\n" + body
        if c.chance(0.3):
            body = f"发送时间：{c.date(p.visit)}\n" + body
    else:
        greet = c.ch(f"Hi {doc},", f"Hello {doc},", "Hi,", "Hello,", "Good morning,", "")
        filler = c.ch("", "Sorry to bother you with this.", "I hope this is the right place to ask.",
                      "I tried calling the office but couldn't get through.", "Quick question.")
        more = r.sample([f"My next appointment with {doc} isn't for a while.", "I didn't want to wait until my next visit to ask.",
                         "I looked online but got confused by all the different answers.",
                         "My pharmacist said I should check with my doctor.", "I don't want to go to urgent care if I don't need to.",
                         "My daughter told me to message you.", "Otherwise I've been doing well."], r.randint(0, 2))
        ctx = ctx[:1] + more + ctx[1:] if r.random() < 0.5 else ctx + more
        thanks = c.ch("Thanks!", "Thank you so much.", "Thanks in advance.", "Appreciate it.", "")
        sig = c.ch(f"{first}", f"{p.name}, DOB {p.dob()}", f"{p.name}\nBest number to reach me: {p.phone}", f"- {first} ({p.mrn})", "")
        parts = [greet, " ".join([filler] + ctx + [q]).strip(), thanks, sig]
        body = "\n\n".join(x for x in parts if x) if c.chance(0.5) else "\n".join(x for x in parts if x)
        if c.chance(0.5):
            body = f"Subject: {cap(t['subj'])}\n" + body
        if c.chance(0.3):
            body = f"Patient portal message - received {c.date(p.visit)}\n" + body
    note = assemble(c, [(body, False)])
    tgt = draft(c, "question_summary", [r.choice(t["s"]) if isinstance(t["s"], list) else t["s"]])
    return note, tgt


# =============================================================================================
# Checks of every pair, and the command.

PLACEHOLDER = re.compile(r"\[[A-Z]+_\d+\]")
LIST_NUMBER = re.compile(r"^\s*\d{1,2}[.)]\s", re.M)


def digits(text: str) -> list[str]:
    return re.findall(r"\d+", text)


def sentences(text: str) -> list[str]:
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    out = []
    for line in lines:
        if re.fullmatch(r"[^:：]{1,40}[:：]", line):  # a heading
            continue
        line = re.sub(r"^(?:[-*]\s+|\d{1,2}[.)]\s+)", "", line)
        out += [s.strip().lower() for s in re.split(r"(?<=[.!?。！？])\s+|(?<=[。！？])", line) if len(s.strip()) > 3]
    return out


def problems(task: str, note: str, target: str, zh: bool, ids: list[str]) -> list[str]:
    """What is wrong with a pair: empty when it is fine."""
    out = []
    lines = [l.strip() for l in target.splitlines()]
    names = [zh_ if zh else en for en, zh_ in SECTIONS[task]]
    colon = "：" if zh else ":"
    at = [lines.index(n + colon) if n + colon in lines else -1 for n in names]
    if -1 in at or at != sorted(at):
        out.append(f"headings {names} missing or out of order")
    headings = [l for l in lines if re.fullmatch(r"[^:：.。]{1,40}[:：]", l)]
    if len(headings) != len(names):
        out.append(f"extra headings {headings}")
    body = LIST_NUMBER.sub("", target)
    extra = sorted(set(digits(body)) - set(digits(note)), key=int)
    if extra:
        out.append(f"numbers not in the note: {extra}")
    s = sentences(target)
    if len(s) != len(set(s)):
        out.append("a repeated sentence")
    if PLACEHOLDER.search(target) or PLACEHOLDER.search(note):
        out.append("a placeholder")
    for i in ids:
        if len(i) >= 2 and re.search(r"(?<![A-Za-z])" + re.escape(i) + r"(?![A-Za-z])", target):
            raise Retry(i)
    return out


def generate(task: str, c: Ctx) -> tuple[str, str]:
    return GENERATORS[task](c)


GENERATORS = {
    "discharge_summary": make_discharge_summary,
    "radiology_impression": make_radiology_impression,
    "soap_note": make_soap_note,
    "diagnostic_report": make_diagnostic_report,
    "operative_note": make_operative_note,
    "patient_explanation": make_patient_explanation,
    "question_summary": make_question_summary,
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="folder for train/validation/test.jsonl")
    ap.add_argument("--n-per-task", type=int, default=60, help="pairs per task (default 60)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--zh-fraction", type=float, default=0.1, help="share of notes in Chinese (default 0.1)")
    ap.add_argument("--tasks", default=",".join(TASKS), help="comma-separated tasks (default: all seven)")
    args = ap.parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    for t in tasks:
        if t not in GENERATORS:
            ap.error(f"unknown task {t!r}; known: {', '.join(TASKS)}")
    if args.n_per_task < 3:
        ap.error("--n-per-task must be at least 3")

    Faker.seed(args.seed)
    fake_en, fake_zh = Faker("en_US"), Faker("zh_CN")
    fake_en.seed_instance(args.seed)
    fake_zh.seed_instance(args.seed + 1)
    rng = random.Random(args.seed)

    splits: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    for task in tasks:
        n = args.n_per_task
        n_zh = round(n * args.zh_fraction)
        langs = [True] * n_zh + [False] * (n - n_zh)
        rng.shuffle(langs)
        rows, seen = [], set()
        for zh in langs:
            for _ in range(50):
                c = Ctx(rng, fake_zh if zh else fake_en, zh)
                try:
                    note, target = generate(task, c)
                    bad = problems(task, note, target, zh, c.ids)
                except Retry:
                    continue
                if bad:
                    raise SystemExit(f"{task}: {'; '.join(bad)}\n--- note\n{note}\n--- target\n{target}")
                if note not in seen:
                    break
            else:
                raise SystemExit(f"{task}: could not draw a usable pair")
            seen.add(note)
            rows.append({"task": task, "note": note, "target": target})
        n_val = n_test = max(1, round(n * 0.1))
        splits["validation"] += rows[:n_val]
        splits["test"] += rows[n_val:n_val + n_test]
        splits["train"] += rows[n_val + n_test:]
    rng.shuffle(splits["train"])

    args.out.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        with open(args.out / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    counts = {name: len(rows) for name, rows in splits.items()}
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
          + f" ({len(tasks)} tasks x {args.n_per_task}, seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
