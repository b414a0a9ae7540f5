# Shared body of the EdgeShard figures (loaded by edgeshard-7b.gp, -13b.gp, -70b.gp, which set `model`).
# Left: time per output token with one request at a time; right: throughput with many requests in flight (16)
# under EdgeShard's "bubbles" schedule (the paper's), with edgeshard-throughput-paper's "no-bubbles" variant dashed;
# both against the edge-cloud bandwidth, one line per algorithm. The paper's absolute numbers (paper.tsv) are
# black dashed lines. Infeasible runs (out of memory) are absent; algorithms with no feasible run at all are
# named in the title instead of the legend.
labels = system("cat '".datadir."/labels-with-data.txt'")
absent = system("tr '\\n' ' ' < '".datadir."/labels-without-data.txt'")

set datafile separator "\t"
bubbles = "bubbles"
nobubbles = "no-bubbles"
set datafile missing "nan"
set logscale x
set xtics (1, 2, 5, 10, 20, 50)
set xrange [0.9:56]
set xlabel "edge-cloud bandwidth (Mbit/s)"
set grid
set key outside bottom center horizontal maxrows 2 font ",9"

do for [fmt in "png pdf"] {
  if (fmt eq "png") { set terminal pngcairo size 1200,560 font ",11" } else { set terminal pdfcairo size 9in,4.2in font ",9" }
  set output outbase.".".fmt
  set multiplot layout 1,2 title model." FP32 on EdgeShard's testbed (12 AGX Orin, 2 Orin NX, RTX 3090; simulated)".(strlen(absent) > 0 ? "\nno feasible plan at any bandwidth: ".absent : "")
  set ylabel "time per output token (ms), 1 request"
  set logscale y
  plot for [l in labels] datadir."/".l.".tsv" \
       using (column("concurrency") == 1 && strcol("param.schedule") eq nobubbles ? column("bandwidth_mbit_s") : NaN):(column("tpot_mean_s")*1000) \
       with linespoints lw 2 pt 7 title l, \
       datadir."/paper.tsv" using (1):(strcol("metric") eq "tpot_mean" ? column("paper")*1000 : NaN):(49):(0) \
       with vectors nohead dt 2 lw 1.5 lc "black" title "paper"
  unset logscale y
  set ylabel "throughput (tokens/s), many requests in flight"
  set yrange [0:*]
  plot for [l in labels] datadir."/".l.".tsv" \
       using (column("concurrency") > 1 && strcol("param.schedule") eq bubbles ? column("bandwidth_mbit_s") : NaN):"throughput_tokens_per_s" \
       with linespoints lw 2 pt 7 title l, \
       datadir."/edgeshard-throughput-paper.tsv" \
       using (column("concurrency") > 1 && strcol("param.schedule") eq nobubbles ? column("bandwidth_mbit_s") : NaN):"throughput_tokens_per_s" \
       with linespoints lw 1.5 dt 3 pt 6 lc "gray40" title "edgeshard-throughput-paper, no bubbles", \
       datadir."/paper.tsv" using (1):(strcol("metric") eq "throughput" ? column("paper") : NaN):(49):(0) \
       with vectors nohead dt 2 lw 1.5 lc "black" notitle
  unset yrange
  unset multiplot
}
