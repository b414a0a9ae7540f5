# dllama-scaling: time per token against the link's one-way latency for Llama 2 7B Q4_0 on Raspberry Pi 4
# (1 Gbit/s), every block split over 1, 2, 4 or 8 devices with a ring all-reduce (tp-N, distributed-llama) or a
# star (tp-star-N, TPI-LLM), beside the pipeline over 8 (one request at a time). The crosses are the paper's
# numbers for 1, 2, 4 and 8 nodes (plotted at 300 µs, where the lab compares them).
# Inputs (set with -e): datadir = directory written by `edgelab export` (labels.txt, <label>.tsv);
#                       outbase = output path without extension (writes outbase.png and outbase.pdf).
if (!exists("datadir")) datadir = "build/plot-data/dllama-scaling"
if (!exists("outbase")) outbase = "results/dllama-scaling"
labels = system("cat '".datadir."/labels.txt'")

set datafile separator "\t"
set datafile missing "nan"
set grid
set linetype 9 lc rgb "#7f7f7f" lw 2 pt 5
set xlabel "one-way link latency (µs)"
set ylabel "time per output token (ms)"
set key outside right top font ",9"
set logscale y
$paper << EOD
300	1312
300	794
300	494
300	588
EOD

do for [fmt in "png pdf"] {
  if (fmt eq "png") { set terminal pngcairo size 1100,560 font ",11" } else { set terminal pdfcairo size 7.5in,3.8in font ",9" }
  set output outbase.".".fmt
  set title "Llama 2 7B Q4\\_0 on Raspberry Pi 4, 1 Gbit/s (simulated); × distributed-llama's measurements"
  plot for [l in labels] datadir."/".l.".tsv" using (column("latency_ms")*1000):(column("tpot_mean_s")*1000) \
       with linespoints lw 2 pt 7 title l, \
       $paper using 1:2 with points pt 2 ps 2 lw 2 lc rgb "black" title "paper (1, 2, 4, 8 nodes)"
}
