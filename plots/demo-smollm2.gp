# demo-smollm2: per algorithm, time per output token and time to first token of the simulated boards (three
# Orin Nano) next to the real run on this host (loopback: three worker processes over TCP), with the boards'
# cost model at Q4_1 (0.625 bytes per weight).
# Inputs (set with -e): datadir = directory written by `edgelab export`; outbase = output path without extension.
if (!exists("datadir")) datadir = "build/plot-data/demo-smollm2"
if (!exists("outbase")) outbase = "results/demo-smollm2"
labels = system("cat '".datadir."/labels.txt'")
n = words(labels)

set datafile separator "\t"
set datafile missing "nan"
set style fill solid 0.8 border -1
set boxwidth 0.35
set grid ytics
set xrange [0.4:n+0.6]
set xtics ()
do for [i=1:n] { set xtics add (word(labels, i) i) }
set key outside bottom center horizontal
offset(b) = (b eq "simulated" ? -0.19 : 0.19)

do for [fmt in "png pdf"] {
  if (fmt eq "png") { set terminal pngcairo size 1100,480 font ",11" } else { set terminal pdfcairo size 8in,3.5in font ",9" }
  set output outbase.".".fmt
  set multiplot layout 1,2 title "SmolLM2-135M Q4\\_1 (real GGUF) on 3 Orin Nano: simulated boards, and real workers on this host over TCP (lossless)"
  set ylabel "time per output token (ms)"
  set yrange [0:*]
  plot for [i=1:n] datadir."/".word(labels, i).".tsv" \
         using (strcol("param.backend") eq "simulated" ? i + offset("simulated") : NaN):(column("tpot_mean_s")*1000) \
         with boxes lc rgb "#4c72b0" title (i == 1 ? "simulated: 3 Orin Nano" : ""), \
       for [i=1:n] datadir."/".word(labels, i).".tsv" \
         using (strcol("param.backend") eq "loopback" ? i + offset("loopback") : NaN):(column("tpot_mean_s")*1000) \
         with boxes lc rgb "#dd8452" title (i == 1 ? "loopback: this host" : "")
  set ylabel "time to first token (s)"
  plot for [i=1:n] datadir."/".word(labels, i).".tsv" \
         using (strcol("param.backend") eq "simulated" ? i + offset("simulated") : NaN):"ttft_mean_s" \
         with boxes lc rgb "#4c72b0" notitle, \
       for [i=1:n] datadir."/".word(labels, i).".tsv" \
         using (strcol("param.backend") eq "loopback" ? i + offset("loopback") : NaN):"ttft_mean_s" \
         with boxes lc rgb "#dd8452" notitle
  unset multiplot
}
