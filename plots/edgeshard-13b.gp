# edgeshard-13b: latency and throughput of every algorithm against edge-cloud bandwidth (Llama-2-13B).
# Inputs (set with -e): datadir = directory written by `edgelab export`; outbase = output path without extension.
if (!exists("datadir")) datadir = "build/plot-data/edgeshard-13b"
if (!exists("outbase")) outbase = "results/edgeshard-13b"
model = "Llama-2-13B"
load "plots/edgeshard.gnuplot"
