# quickstart: time per output token against the bandwidth between devices, one line per algorithm.
# Inputs (set with -e): datadir = directory written by `edgelab export` (labels.txt, <label>.tsv);
#                       outbase = output path without extension (writes outbase.png and outbase.pdf).
if (!exists("datadir")) datadir = "build/plot-data/quickstart"
if (!exists("outbase")) outbase = "results/quickstart"
labels = system("cat '".datadir."/labels.txt'")

set datafile separator "\t"
set datafile missing "nan"
set logscale x
set logscale y
set xlabel "bandwidth between devices (Mbit/s)"
set ylabel "time per output token (ms)"
set title "Llama-2-7B FP32 on AGX Orin + 2x Orin NX + RTX 3090 (simulated)"
set key top right
set grid

do for [fmt in "png pdf"] {
  if (fmt eq "png") { set terminal pngcairo size 900,560 font ",11" } else { set terminal pdfcairo size 6in,3.7in font ",9" }
  set output outbase.".".fmt
  plot for [l in labels] datadir."/".l.".tsv" using "bandwidth_mbit_s":(column("tpot_mean_s")*1000) \
       with linespoints lw 2 pt 7 title l
}
