import re,glob,collections,sys
PAT=re.compile(r'\[\[([A-Z_]+):(.*?)\]\]')
ALLOWED={'NAME','LOCATION','DATE','AGE','PHONE','FAX','EMAIL','URL','IP_ADDRESS','MRN','ID','ID_NUMBER','SSN','HEALTH_PLAN','ACCOUNT','LICENSE','DEVICE','VEHICLE'}
tot=collections.Counter(); ok=True; n=0
for f in sorted(glob.glob('/tmp/blind7/*.txt')):
    s=open(f,encoding='utf-8').read()
    marks=PAT.findall(s)
    plain=PAT.sub(lambda m:m.group(2),s)
    c=collections.Counter(k for k,_ in marks)
    errs=[]
    if '[[' in plain or ']]' in plain: errs.append('leftover brackets')
    bad={k for k,_ in marks}-ALLOWED
    if bad: errs.append(f'bad categories {bad}')
    if any(not t.strip() or t!=t.strip() for _,t in marks): errs.append('empty/padded span')
    for L,lab in ((len(plain),'plain'),(len(s),'annotated')):
        if not 1500<=L<=3500: errs.append(f'{lab} length {L} out of range')
    ok&=not errs; tot+=c; n+=len(marks)
    print(f"{f.split('/')[-1]:14s} plain={len(plain):5d} annotated={len(s):5d} ids={len(marks):3d} {'OK' if not errs else 'ERR '+'; '.join(errs)}")
print('\nper category:')
for k,v in tot.most_common(): print(f'  {k:12s} {v}')
print(f'  TOTAL        {n}')

# --- check digits of national numbers (ID_NUMBER, SSN, HEALTH_PLAN, NPI) ---
import datetime,importlib.util
spec=importlib.util.spec_from_file_location('cd','/tmp/blind7/check_digits.py'); cd=importlib.util.module_from_spec(spec); spec.loader.exec_module(cd)
def verify(cat,v):
    d=re.sub(r'[\s-]','',v)
    if cat=='SSN':
        a,g,sn=v.split('-'); return a not in('000','666') and not a.startswith('9') and g!='00' and sn!='0000'
    if re.fullmatch(r'\d{17}[\dX]',d): return cd.cn_id(d[:17])==d
    if re.fullmatch(r'[STFG]\d{7}[A-Z]',d): return cd.sg(d[0],d[1:8])==d
    if re.fullmatch(r'[A-Z]{1,2}\d{6}\([\dA]\)',d):
        L=re.match(r'[A-Z]+',d).group(0); return cd.hkid(L,d[len(L):len(L)+6])==d
    if re.fullmatch(r'\d{12}',d):  # MyKad: YYMMDD must be a real date
        y,m,dd=int(d[:2]),int(d[2:4]),int(d[4:6])
        try: datetime.date(1900+y,m,dd); return True
        except ValueError: return False
    if cat=='HEALTH_PLAN' and re.fullmatch(r'[2-6]\d{9}',d): return cd.medicare(d[:8],d[9])==d
    if cat=='LICENSE' and re.fullmatch(r'\d{10}',d): return cd.npi(d[:9])==d
    if cat=='LICENSE' and re.fullmatch(r'\d{6}[0-9A-Z][A-Z]',d): return cd.au_provider(d[:6],d[6])==d
    if cat=='VEHICLE' and re.fullmatch(r'S[A-Z]{1,2}\d{1,4}[A-Z]',d): return cd.sg_plate(re.match(r'[A-Z]+',d).group(0),re.search(r'\d+',d).group(0)).replace(' ','')==d
    return None
print('\nnational numbers:')
for f in sorted(glob.glob('/tmp/blind7/*.txt')):
    for cat,t in PAT.findall(open(f,encoding='utf-8').read()):
        if cat in('ID_NUMBER','SSN','HEALTH_PLAN','LICENSE','VEHICLE'):
            r=verify(cat,t)
            if r is False: ok=False
            print(f"  {f.split('/')[-1]:13s} {cat:11s} {t:22s} {'valid' if r else ('INVALID' if r is False else 'no checksum scheme')}")
sys.exit(0 if ok else 1)
