# demo-3x-orin-nano: per algorithm, time per output token and where each device's time went (real run).
# Inputs (set with -e): datadir = directory written by `edgelab export`; outbase = output path without extension.
if (!exists("datadir")) datadir = "build/plot-data/demo-3x-orin-nano"
if (!exists("outbase")) outbase = "results/demo-3x-orin-nano"
labels = system("cat '".datadir."/labels.txt'")
n = words(labels)

set datafile separator "\t"
set datafile missing "nan"
set style fill solid 0.8 border -1
set boxwidth 0.6
set grid ytics
set xrange [0.4:n+0.6]
set xtics () 
do for [i=1:n] { set xtics add (word(labels, i) i) }

do for [fmt in "png pdf"] {
  if (fmt eq "png") { set terminal pngcairo size 1100,480 font ",11" } else { set terminal pdfcairo size 8in,3.5in font ",9" }
  set output outbase.".".fmt
  set multiplot layout 1,2 title "Llama-3.2-3B FP32 on 3 Orin Nano workers over loopback TCP (real computation, lossless)"
  set ylabel "time per output token (ms)"
  set yrange [0:*]
  plot for [i=1:n] datadir."/".word(labels, i).".tsv" using (i):(column("tpot_mean_s")*1000) with boxes notitle lc i, \
       for [i=1:n] datadir."/".word(labels, i).".tsv" using (i):(column("tpot_mean_s")*1000):(sprintf("%.0f", column("tpot_mean_s")*1000)) with labels offset 0,0.7 notitle
  set ylabel "time to first token (s)"
  plot for [i=1:n] datadir."/".word(labels, i).".tsv" using (i):"ttft_mean_s" with boxes notitle lc i, \
       for [i=1:n] datadir."/".word(labels, i).".tsv" using (i):"ttft_mean_s":(sprintf("%.2f", column("ttft_mean_s"))) with labels offset 0,0.7 notitle
  unset multiplot
}
