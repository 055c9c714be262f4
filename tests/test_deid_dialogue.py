"""De-identification of transcribed clinic conversations, where identifiers are spoken: scored
on the hand-annotated dialogues of tests/data/deid_dialogue/ (written by someone who saw neither
the detectors nor the tagger's generator; see its README), and each spoken form checked on its
own, with the readings, counts and emergency numbers that must stay.
"""

import pytest

import medgen
from test_deid import load_note
from conftest import ROOT

DATA = ROOT / "tests" / "data" / "deid_dialogue"


def char_counts(text, gold, predicted):
    """(true positives, false positives, false negatives) over the non-space characters."""
    g, p = [False] * len(text), [False] * len(text)
    for _, s, e in gold:
        g[s:e] = [True] * (e - s)
    for e in predicted:
        p[e["start"]:e["end"]] = [True] * (e["end"] - e["start"])
    pairs = [(a, b) for ch, a, b in zip(text, g, p) if not ch.isspace()]
    return sum(a and b for a, b in pairs), sum(b and not a for a, b in pairs), sum(a and not b for a, b in pairs)


@pytest.mark.parametrize("split, recall_min, precision_min", [("dev", 0.92, 0.92), ("test", 0.90, 0.93)])
def test_the_ensemble_on_annotated_dialogues(split, recall_min, precision_min):
    notes = [load_note(p) for p in sorted(DATA.glob(f"{split}_*.txt"))]
    assert len(notes) >= 6
    found = medgen.deid.detect_batch([text for text, _ in notes])
    tp = fp = fn = 0
    for (text, gold), predicted in zip(notes, found):
        a, b, c = char_counts(text, gold, predicted)
        tp, fp, fn = tp + a, fp + b, fn + c
    recall, precision = tp / (tp + fn), tp / (tp + fp)
    print(f"\n{split}: character recall {recall:.3f}, precision {precision:.3f}")
    assert recall >= recall_min and precision >= precision_min, (recall, precision)


DIALOGUE = """D: Can you confirm your date of birth?
P: May seventh, nineteen sixty-seven.
D: And a phone number where we can reach you?
P: oh, nine seven one, five five five, oh one oh seven.
D: How old is your mother now?
P: Ninety-three. She'll be ninety-four on the fifteenth of April.
D: Your insurance member number?
P: M as in Mary, R, four four two double seven one.
D: Email?
P: it's k underscore reyes ninety one at yahoo dot com.
D: And you live at?
P: four twelve elm street, apartment three, near the cvs on granite avenue.
D: Come back on the twenty first. Your blood pressure was one forty over ninety, pulse ninety,
oxygen ninety two percent. Serial sevens: ninety-three, eighty-six, seventy-nine. Pain is a seven
out of ten; take one or two tablets three times a day. If it gets worse call nine one one.
D: The connection from one nine two, dot, one sixty-eight, dot, four, dot, twenty is unstable; book online at
riverside family practice dot co dot uk slash appointments.
P: My wife saw the plate, it was eight, A, B, C, one, two, three. I'm over in quincy.
P: 今年九十二了，电话是一三八零零一三八零零零，上个月十八号摔了一跤。"""

SPOKEN = {
    "May seventh, nineteen sixty-seven": "DATE",
    "nine seven one, five five five, oh one oh seven": "PHONE",
    "Ninety-three": "AGE",
    "ninety-four": "AGE",
    "the fifteenth of April": "DATE",
    "M as in Mary, R, four four two double seven one": "HEALTH_PLAN",
    "k underscore reyes ninety one at yahoo dot com": "EMAIL",
    "four twelve elm street, apartment three": "LOCATION",
    "cvs": "LOCATION",
    "granite avenue": "LOCATION",
    "the twenty first": "DATE",
    "九十二": "AGE",
    "一三八零零一三八零零零": "PHONE",
    "十八号": "DATE",
    "one nine two, dot, one sixty-eight, dot, four, dot, twenty": "IP_ADDRESS",
    "riverside family practice dot co dot uk slash appointments": "URL",
    "eight, A, B, C, one, two, three": "VEHICLE",
    "quincy": "LOCATION",
}
KEPT = ["one forty over ninety", "pulse ninety", "ninety two percent", "ninety-three, eighty-six, seventy-nine",
        "a seven\nout of ten", "one or two tablets three times a day", "nine one one"]


@pytest.mark.parametrize("engine", ["rules", "ensemble"])
def test_each_spoken_identifier_is_found_whole_and_readings_stay(engine):
    found = {(e["text"], e["category"]) for e in medgen.deid.detect(DIALOGUE, engine=engine)}
    for text, category in SPOKEN.items():
        assert (text, category) in found or engine == "ensemble" and any(text in f for f, _ in found), text
    out = medgen.deid.deidentify(DIALOGUE, engine=engine)["text"]
    for text in SPOKEN:
        assert text not in out, text
    if engine == "rules":
        for text in KEPT:
            assert text in out, text


def test_spoken_dates_get_placeholders_when_dates_shift_and_written_ones_move():
    out = medgen.deid.deidentify("Seen on 03/14/2024; back on the twenty first of March.", mode="shift-dates",
                                 shift_days=10, engine="rules")
    assert out["text"] == "Seen on 03/24/2024; back on [DATE_1]."
    assert medgen.deid.reidentify(out["text"], out["mapping"]).endswith("back on the twenty first of March.")
