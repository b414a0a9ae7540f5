# hybrid-vs-pipeline: time per token against the Wi-Fi link's one-way latency for Llama 3.1 8B FP16 on two Orin NX
# 8GB and an Orin Nano 8GB, one panel per wired-LAN latency: the exact pipeline (EdgeShard), one tensor-parallel
# group of all three (Galaxy's shares) and the exact hybrid of both (simulated, one request at a time).
# Inputs (set with -e): datadir = directory written by `edgelab export` (labels.txt, <label>.tsv);
#                       outbase = output path without extension (writes outbase.png and outbase.pdf).
if (!exists("datadir")) datadir = "build/plot-data/hybrid-vs-pipeline"
if (!exists("outbase")) outbase = "results/hybrid-vs-pipeline"
labels = system("cat '".datadir."/labels.txt'")

set datafile separator "\t"
set datafile missing "nan"
set grid
set logscale xy
set xlabel "Wi-Fi one-way latency (ms)"
set ylabel "time per output token (ms)"
at(lan) = (abs(column("lan_latency_ms") - lan) < 1e-6) ? column("wifi_latency_ms") : NaN

do for [fmt in "png pdf"] {
  if (fmt eq "png") { set terminal pngcairo size 1200,520 font ",11" } else { set terminal pdfcairo size 8.5in,3.6in font ",9" }
  set output outbase.".".fmt
  set multiplot layout 1,2 title "Llama 3.1 8B FP16 on 2 Orin NX 8GB + Orin Nano 8GB: hybrid against pipeline and tensor (simulated)"
  set key top left font ",9"
  do for [lan in "0.1 5"] {
    set title "wired LAN ".lan." ms"
    plot for [l in labels] datadir."/".l.".tsv" using (at(real(lan))):(column("tpot_mean_s")*1000) \
         with linespoints lw 2 pt 7 title l
  }
  unset multiplot
}
