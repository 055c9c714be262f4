#!/usr/bin/env python3
"""Parse every annotated text in this folder, validate marks and check digits, print counts."""
import re, glob, os, collections, sys
HERE = os.path.dirname(os.path.abspath(__file__))
ALLOWED = {"NAME","LOCATION","DATE","AGE","PHONE","FAX","EMAIL","URL","IP_ADDRESS","MRN","ID",
           "ID_NUMBER","SSN","HEALTH_PLAN","ACCOUNT","LICENSE","DEVICE","VEHICLE"}
MARK = re.compile(r"\[\[([A-Z_]+):(.*?)\]\]")

# ---- check-digit validators for national numbers ----
def nhs_ok(s):
    d = re.sub(r"\D", "", s)
    if len(d) != 10: return False
    r = 11 - sum(int(c)*(10-i) for i, c in enumerate(d[:9])) % 11
    r = 0 if r == 11 else r
    return r != 10 and r == int(d[9])
def cnid_ok(s):
    w = [7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2]
    return len(s) == 18 and "10X98765432"[sum(int(a)*b for a, b in zip(s[:17], w)) % 11] == s[17].upper()
def hkid_ok(s):
    m = re.fullmatch(r"([A-Z]{1,2})(\d{6})\(([0-9A])\)", s)
    if not m: return False
    p = m.group(1).rjust(2); tot = sum((36 if ch == " " else ord(ch)-55)*(9-i) for i, ch in enumerate(p))
    tot += sum(int(ch)*(7-i) for i, ch in enumerate(m.group(2)))
    c = (11 - tot % 11) % 11
    return m.group(3) == ("A" if c == 10 else str(c))
def nric_ok(s):
    m = re.fullmatch(r"([STFG])(\d{7})([A-Z])", s)
    if not m: return False
    tot = sum(int(a)*b for a, b in zip(m.group(2), [2,7,6,5,4,3,2])) + (4 if m.group(1) in "TG" else 0)
    table = "JZIHGFEDCBA" if m.group(1) in "ST" else "XWUTRQPNMLK"
    return table[tot % 11] == m.group(3)
_D = [[0,1,2,3,4,5,6,7,8,9],[1,2,3,4,0,6,7,8,9,5],[2,3,4,0,1,7,8,9,5,6],[3,4,0,1,2,8,9,5,6,7],[4,0,1,2,3,9,5,6,7,8],
      [5,9,8,7,6,0,4,3,2,1],[6,5,9,8,7,1,0,4,3,2],[7,6,5,9,8,2,1,0,4,3],[8,7,6,5,9,3,2,1,0,4],[9,8,7,6,5,4,3,2,1,0]]
_P = [[0,1,2,3,4,5,6,7,8,9],[1,5,7,6,2,8,3,0,9,4],[5,8,0,3,7,9,6,1,4,2],[8,9,1,6,0,4,3,5,2,7],
      [9,4,5,3,1,2,6,8,7,0],[4,2,8,6,5,7,3,9,0,1],[2,7,9,3,8,0,6,4,1,5],[7,0,4,6,9,1,3,2,5,8]]
def aadhaar_ok(s):
    d = re.sub(r"\s", "", s)
    if not re.fullmatch(r"[2-9]\d{11}", d): return False
    c = 0
    for i, ch in enumerate(reversed(d)): c = _D[c][_P[i % 8][int(ch)]]
    return c == 0
def ppsn_ok(s):
    m = re.fullmatch(r"(\d{7})([A-W])([A-IW]?)", s)
    if not m: return False
    tot = sum(int(a)*(8-i) for i, a in enumerate(m.group(1)))
    if m.group(3) and m.group(3) != "W": tot += 9*(ord(m.group(3))-64)
    r = tot % 23
    return m.group(2) == ("W" if r == 0 else chr(64+r))
WORDS = {"zero":"0","oh":"0","one":"1","two":"2","three":"3","four":"4","five":"5","six":"6","seven":"7","eight":"8","nine":"9"}
def spoken_digits(s):
    return "".join(WORDS.get(w, "") for w in s.split())
def ssn_ok(s):
    d = re.sub(r"\D", "", s) or spoken_digits(s)
    return len(d) == 9 and d[:3] not in ("000","666") and d[0] != "9" and d[3:5] != "00" and d[5:] != "0000"

def check_national(cat, text):
    """Return None if no scheme recognised, else True/False."""
    t = text.strip()
    if cat == "SSN": return ssn_ok(t)
    if cat == "HEALTH_PLAN" and (re.fullmatch(r"\d{3} ?\d{3} ?\d{4}", t) or (len(spoken_digits(t)) == 10 and t.islower() and len(t.split()) == 10)):
        return nhs_ok(t if re.search(r"\d", t) else spoken_digits(t))
    if cat == "ID_NUMBER":
        if re.fullmatch(r"\d{17}[\dXx]", t): return cnid_ok(t)
        if re.fullmatch(r"[A-Z]{1,2}\d{6}\([0-9A]\)", t): return hkid_ok(t)
        if re.fullmatch(r"[STFG]\d{7}[A-Z]", t): return nric_ok(t)
        if re.fullmatch(r"\d{4} ?\d{4} ?\d{4}", t): return aadhaar_ok(t)
        if re.fullmatch(r"\d{7}[A-W][A-IW]?", t): return ppsn_ok(t)
    return None

def main():
    files = sorted(glob.glob(os.path.join(HERE, "*.txt")))
    total = collections.Counter(); bad = 0
    for f in files:
        s = open(f, encoding="utf-8").read()
        marks = MARK.findall(s)
        stripped = MARK.sub(lambda m: m.group(2), s)
        name = os.path.basename(f)
        errs = []
        if "[[" in stripped or "]]" in stripped: errs.append("leftover [[ or ]] after stripping")
        for cat, txt in marks:
            if cat not in ALLOWED: errs.append(f"bad category {cat}")
            if "[" in txt or "]" in txt: errs.append(f"nested/bracket in span {txt!r}")
            if txt != txt.strip() or not txt: errs.append(f"span with edge whitespace {txt!r}")
            ok = check_national(cat, txt)
            if ok is False: errs.append(f"check digit fails: {cat} {txt!r}")
        if not (1500 <= len(stripped) <= 4000): errs.append(f"stripped length {len(stripped)} outside 1500-4000")
        c = collections.Counter(cat for cat, _ in marks); total += c
        print(f"{name:16s} chars={len(s):5d} stripped={len(stripped):5d} ids={sum(c.values()):3d}  " +
              ", ".join(f"{k}={v}" for k, v in sorted(c.items())))
        for e in errs: print("   ERROR:", e); bad += 1
    print("-"*60)
    print(f"TOTAL {sum(total.values())} identifiers in {len(files)} files")
    for k, v in sorted(total.items(), key=lambda kv: -kv[1]): print(f"  {k:12s} {v}")
    sys.exit(1 if bad else 0)

if __name__ == "__main__":
    main()
