"""Command line: `vaemsgan train | generate | reconstruct | interpolate | check-data | demo | presets`."""
