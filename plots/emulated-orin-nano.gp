# emulated-orin-nano: time to first token and time per output token against link bandwidth, simulated (dashed)
# and emulated (solid), in device time (wall time ÷ the dilation factor).
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
sim(col) = is_sim(strcol("param.backend")) ? column(col) : NaN
emu(col) = is_sim(strcol("param.backend")) ? NaN : column(col)

do for [fmt in "png pdf"] {
  if (fmt eq "png") { set terminal pngcairo size 1100,480 font ",11" } else { set terminal pdfcairo size 7.5in,3.3in font ",9" }
  set output outbase.".".fmt
  set multiplot layout 1,2 title "Llama-3.2-1B FP32 on 2 Orin Nano: simulator (dashed) vs emulated cluster (solid; namespaces, tc, cgroups, dilation)"
  set ylabel "time to first token, median (ms)"
  plot for [i=1:words(labels)] datadir."/".word(labels, i).".tsv" \
         using (sim("bandwidth_mbit_s")):(column("ttft_p50_s")*1000) with linespoints dt 2 lw 2 pt 6 lc i title word(labels, i)." (sim.)", \
       for [i=1:words(labels)] datadir."/".word(labels, i).".tsv" \
         using (emu("bandwidth_mbit_s")):(column("ttft_p50_s")*1000) with linespoints dt 1 lw 2 pt 7 lc i title word(labels, i)." (emul.)"
  set ylabel "time per output token, mean (ms)"
  plot for [i=1:words(labels)] datadir."/".word(labels, i).".tsv" \
         using (sim("bandwidth_mbit_s")):(column("tpot_mean_s")*1000) with linespoints dt 2 lw 2 pt 6 lc i notitle, \
       for [i=1:words(labels)] datadir."/".word(labels, i).".tsv" \
         using (emu("bandwidth_mbit_s")):(column("tpot_mean_s")*1000) with linespoints dt 1 lw 2 pt 7 lc i notitle
  unset multiplot
}
