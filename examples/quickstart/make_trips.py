"""Writes trips/part-{0..3}.csv: 2,000 synthetic taxi trips in four files of 500.

Deterministic (fixed seed, standard library only): run `python3 make_trips.py` in this folder to
regenerate byte-identical files.
"""
import os
import random
from datetime import datetime, timedelta

rng = random.Random(42)
notes = [" Airport ", "CITY centre", "airport", "  Suburbs", "STATION ", "city CENTRE", ""]
start = datetime(2026, 1, 1)
header = "trip_id,vendor,pickup_at,distance_km,fare,passengers,note\n"

os.makedirs("trips", exist_ok=True)
for part in range(4):
    with open(f"trips/part-{part}.csv", "w", newline="") as f:
        f.write(header)
        for i in range(part * 500, (part + 1) * 500):
            vendor = rng.choice("ABC")
            pickup = start + timedelta(minutes=rng.randrange(0, 60 * 24 * 30))
            distance = round(rng.expovariate(1 / 4.0), 2)
            fare = round(3.5 + distance * 1.8 + rng.random() * 2, 2)
            passengers = rng.randint(1, 4)
            # About 3% of distances are missing.
            dist_text = "" if rng.random() < 0.03 else f"{distance}"
            note = rng.choice(notes)
            f.write(f"{i},{vendor},{pickup:%Y-%m-%dT%H:%M:%S},{dist_text},{fare},{passengers},{note}\n")
