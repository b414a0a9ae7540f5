# edgeshard-7b-server: EdgeShard 7B's time per token (one request, 50 Mbit/s) against the server's memory
# efficiency, which the paper does not publish; the paper's 75.88 ms dashed.
# Inputs (set with -e): datadir = directory written by `edgelab export`; outbase = output path without extension.
if (!exists("datadir")) datadir = "build/plot-data/edgeshard-7b-server"
if (!exists("outbase")) outbase = "results/edgeshard-7b-server"
labels = system("cat '".datadir."/labels-with-data.txt'")

set datafile separator "\t"
set datafile missing "nan"
set xlabel "RTX 3090 server: fraction of its 936 GB/s reached while streaming weights"
set ylabel "time per output token (ms), 1 request, 50 Mbit/s"
set grid
set key top right
set xrange [0:1]
set yrange [0:*]
do for [fmt in "png pdf"] {
  if (fmt eq "png") { set terminal pngcairo size 900,520 font ",11" } else { set terminal pdfcairo size 6.5in,3.8in font ",9" }
  set output outbase.".".fmt
  set title "Llama-2-7B FP32, EdgeShard testbed (simulated): the server's speed sets EdgeShard's latency\n(cloud-edge-opt chooses the same plan as edgeshard-latency: its line is underneath)"
  plot for [l in labels] datadir."/".l.".tsv" using "server_memory_efficiency":(column("tpot_mean_s")*1000) \
       with linespoints lw 2 pt 7 title l, \
       75.88 with lines dt 2 lw 1.5 lc "black" title "paper: EdgeShard 75.88 ms"
}
