# emulated-orin-nano: time to first token and time per output token against link bandwidth, simulated (dashed)
# and emulated (solid), in device time (wall time ÷ the dilation factor); one user at a time (top) and Poisson
# arrivals (bottom).
# Inputs (set with -e): datadir = directory written by `edgelab export`; outbase = output path without extension.
if (!exists("datadir")) datadir = "build/plot-data/emulated-orin-nano"
if (!exists("outbase")) outbase = "results/emulated-orin-nano"
labels = system("cat '".datadir."/labels.txt'")

set datafile separator "\t"
set datafile missing "nan"
set logscale x
set xlabel "link bandwidth (Mbit/s)"
set yrange [0:*]
set grid
set key top right font ",9"
is_sim(s) = (strstrt(s, "simulated") > 0)
# A column of the rows run by the simulator (or emulated), one user at a time (or Poisson arrivals); NaN elsewhere
# (the experiment sweeps the bandwidth innermost, so each curve's rows are consecutive).
pick(col, simulated, poisson) = (is_sim(strcol("param.backend")) == simulated && (strcol("arrival_kind") eq "poisson") == poisson) ? column(col) : NaN

do for [fmt in "png pdf"] {
  if (fmt eq "png") { set terminal pngcairo size 1100,860 font ",11" } else { set terminal pdfcairo size 7.5in,6in font ",9" }
  set output outbase.".".fmt
  set multiplot layout 2,2 title "Llama-3.2-1B FP32 on 2 Orin Nano: simulator (dashed) vs emulated cluster (solid; namespaces, tc, cgroups, dilation)"
  do for [poisson=0:1] {
    arrivals = poisson ? "Poisson, 1 request/s" : "one user at a time"
    set ylabel "time to first token, median (ms)"
    set title arrivals
    plot for [i=1:words(labels)] datadir."/".word(labels, i).".tsv" \
           using (pick("bandwidth_mbit_s", 1, poisson)):(column("ttft_p50_s")*1000) with linespoints dt 2 lw 2 pt 6 lc i title word(labels, i)." (sim.)", \
         for [i=1:words(labels)] datadir."/".word(labels, i).".tsv" \
           using (pick("bandwidth_mbit_s", 0, poisson)):(column("ttft_p50_s")*1000) with linespoints dt 1 lw 2 pt 7 lc i title word(labels, i)." (emul.)"
    set ylabel "time per output token, mean (ms)"
    plot for [i=1:words(labels)] datadir."/".word(labels, i).".tsv" \
           using (pick("bandwidth_mbit_s", 1, poisson)):(column("tpot_mean_s")*1000) with linespoints dt 2 lw 2 pt 6 lc i notitle, \
         for [i=1:words(labels)] datadir."/".word(labels, i).".tsv" \
           using (pick("bandwidth_mbit_s", 0, poisson)):(column("tpot_mean_s")*1000) with linespoints dt 1 lw 2 pt 7 lc i notitle
  }
  unset multiplot
}
