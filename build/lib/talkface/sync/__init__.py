"""Everything about audio-visual timing, in one place: offsets, sync confidence and the sync
curve, for the scorer, the app, the baseline and the benchmark generator alike."""
