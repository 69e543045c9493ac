"""Prints the ~600-byte benchmark page (the same one bench/quick.sh writes)."""
print('<!DOCTYPE html><html><head><meta charset="utf-8"><title>bench</title></head><body>')
for i in range(1, 8):
    print(f"<p>Paragraph {i} of the benchmark page, padding it out to size.</p>")
print("</body></html>")
