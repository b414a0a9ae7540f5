# tpi-latency-bandwidth: time per token against the link's one-way latency, one panel per bandwidth, for
# Llama 2 7B Q4_0 shared by 8 Raspberry Pi 4 with a ring (tp-ring-8) or a star (tp-star-8) all-reduce, beside
# the pipeline over the same 8 (simulated, one request at a time).
# Inputs (set with -e): datadir = directory written by `edgelab export` (labels.txt, <label>.tsv);
#                       outbase = output path without extension (writes outbase.png and outbase.pdf).
if (!exists("datadir")) datadir = "build/plot-data/tpi-latency-bandwidth"
if (!exists("outbase")) outbase = "results/tpi-latency-bandwidth"
labels = system("cat '".datadir."/labels.txt'")

set datafile separator "\t"
set datafile missing "nan"
set grid
set logscale xy
set xlabel "one-way link latency (ms)"
set ylabel "time per output token (ms)"
at(bw) = (abs(column("bandwidth_mbit_s") - bw) < 1e-9) ? column("latency_ms") : NaN

do for [fmt in "png pdf"] {
  if (fmt eq "png") { set terminal pngcairo size 1500,520 font ",11" } else { set terminal pdfcairo size 10.5in,3.6in font ",9" }
  set output outbase.".".fmt
  set multiplot layout 1,3 title "Llama 2 7B Q4\\_0 on 8 Raspberry Pi 4: ring against star all-reduce, and the pipeline (simulated)"
  set key top left font ",9"
  do for [bw in "10 100 1000"] {
    set title bw." Mbit/s"
    plot for [l in labels] datadir."/".l.".tsv" using (at(real(bw))):(column("tpot_mean_s")*1000) \
         with linespoints lw 2 pt 7 title l
  }
  unset multiplot
}
