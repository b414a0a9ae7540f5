# quickstart: against the bandwidth between devices, time per output token (left) and throughput (right), one
# line per algorithm (even split, Edge-Solo, EdgeShard's latency and throughput plans, LIME).
# Inputs (set with -e): datadir = directory written by `edgelab export` (labels.txt, <label>.tsv);
#                       outbase = output path without extension (writes outbase.png and outbase.pdf).
if (!exists("datadir")) datadir = "build/plot-data/quickstart"
if (!exists("outbase")) outbase = "results/quickstart"
labels = system("cat '".datadir."/labels.txt'")

set datafile separator "\t"
set datafile missing "nan"
set logscale x
set xlabel "bandwidth between devices (Mbit/s)"
set grid

do for [fmt in "png pdf"] {
  if (fmt eq "png") { set terminal pngcairo size 1300,560 font ",11" } else { set terminal pdfcairo size 9in,3.7in font ",9" }
  set output outbase.".".fmt
  set multiplot layout 1,2 title "Llama-2-7B FP32 on AGX Orin + 2x Orin NX + RTX 3090, 4 requests in flight (simulated)"
  set logscale y
  set ylabel "time per output token (ms)"
  set key top right
  plot for [l in labels] datadir."/".l.".tsv" using "bandwidth_mbit_s":(column("tpot_mean_s")*1000) \
       with linespoints lw 2 pt 7 title l
  unset logscale y
  set ylabel "throughput (tokens/s)"
  set yrange [0:*]
  set key top left
  plot for [l in labels] datadir."/".l.".tsv" using "bandwidth_mbit_s":"throughput_tokens_per_s" \
       with linespoints lw 2 pt 7 title l
  unset yrange
  unset multiplot
}
