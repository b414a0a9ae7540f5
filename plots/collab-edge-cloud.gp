# collab-edge-cloud: splitting, speculative decoding and routing for one edge device and one server.
# Left and middle: mean end-to-end time per query against the round trip (2 × one-way latency) at 10 and
# 1 Mbit/s, one line per strategy. Right: accuracy (measured on the questions) against end-to-end time at
# 10 Mbit/s and 100 ms RTT, one point per strategy.
# Inputs (set with -e): datadir = directory written by `edgelab export` (labels.txt, <label>.tsv);
#                       outbase = output path without extension (writes outbase.png and outbase.pdf).
if (!exists("datadir")) datadir = "build/plot-data/collab-edge-cloud"
if (!exists("outbase")) outbase = "results/collab-edge-cloud"
labels = system("cat '".datadir."/labels.txt'")

set datafile separator "\t"
set datafile missing "nan"
set grid

at(bw) = (abs(column("bandwidth_mbit_s") - bw) < 1e-9) ? 2 * column("latency_ms") : NaN

do for [fmt in "png pdf"] {
  if (fmt eq "png") { set terminal pngcairo size 1600,560 font ",11" } else { set terminal pdfcairo size 11in,3.8in font ",9" }
  set output outbase.".".fmt
  set multiplot layout 1,3 title "SmolLM2-135M (Q4\\_1): Jetson Orin Nano + RTX 3090 server, 24 questions (simulated; accuracy measured)"
  set xlabel "round-trip time (ms)"
  set ylabel "end-to-end per query (ms)"
  set logscale y
  set key top left font ",9"
  set title "10 Mbit/s"
  plot for [l in labels] datadir."/".l.".tsv" using (at(10)):(column("e2e_mean_s")*1000) with linespoints lw 2 pt 7 title l
  set title "1 Mbit/s"
  plot for [l in labels] datadir."/".l.".tsv" using (at(1)):(column("e2e_mean_s")*1000) with linespoints lw 2 pt 7 title l
  unset logscale y
  set title "10 Mbit/s, 100 ms RTT"
  set xlabel "end-to-end per query (ms)"
  set ylabel "accuracy (%)"
  set logscale x
  set yrange [0:*]
  set key bottom right font ",9"
  plot for [l in labels] datadir."/".l.".tsv" \
       using ((abs(column("bandwidth_mbit_s") - 10) < 1e-9 && abs(column("latency_ms") - 50) < 1e-9) ? column("e2e_mean_s")*1000 : NaN):(column("accuracy")*100) \
       with points pt 7 ps 2 title l
  unset logscale x
  unset yrange
  unset multiplot
}
