# Pull CUDA ELF images (cubins) out of CubeCL's kernel cache files; run cuobjdump -res-usage.
import os, re, subprocess, sys
cache, tool, out = sys.argv[1], sys.argv[2], sys.argv[3]
n = 0
for root, _, files in os.walk(cache):
    for f in files:
        data = open(os.path.join(root, f), 'rb').read()
        for m in re.finditer(rb'\x7fELF', data):
            n += 1
            p = os.path.join(out, f'k{n}.cubin')
            open(p, 'wb').write(data[m.start():])
            r = subprocess.run([tool, '-res-usage', p], capture_output=True, text=True)
            txt = r.stdout + r.stderr
            if re.search(r'[Ss]can|[Aa]ttention', txt):
                print(txt[-1200:])
print('cubins:', n, 'files:', sum(len(f) for _, _, f in os.walk(cache)))
