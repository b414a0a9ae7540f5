# edgeshard-7b: latency and throughput of every algorithm against edge-cloud bandwidth (Llama-2-7B).
# Inputs (set with -e): datadir = directory written by `edgelab export`; outbase = output path without extension.
if (!exists("datadir")) datadir = "build/plot-data/edgeshard-7b"
if (!exists("outbase")) outbase = "results/edgeshard-7b"
model = "Llama-2-7B"
load "plots/edgeshard.gnuplot"
