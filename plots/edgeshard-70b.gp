# edgeshard-70b: latency and throughput of every algorithm against edge-cloud bandwidth (Llama-2-70B).
# Inputs (set with -e): datadir = directory written by `edgelab export`; outbase = output path without extension.
if (!exists("datadir")) datadir = "build/plot-data/edgeshard-70b"
if (!exists("outbase")) outbase = "results/edgeshard-70b"
model = "Llama-2-70B"
load "plots/edgeshard.gnuplot"
